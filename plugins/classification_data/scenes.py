"""Acoustic scenes (``scenes``, ``scenes3``): ambience beds and event textures, scene recipes,
recording places and cities, and the rendering of one scene clip."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sedkit.data.synthesis import (
    band,
    fast_len_at_least,
    filter_magnitude,
    rfft_freqs,
    tilt,
    unit_rms,
)
from sedkit_plugins.classification_data.sound import (
    _decay,
    _harmonics,
    _level,
    _noise,
    _peak,
    _place,
    _saw,
    _walk,
)


def _room_and_colour(x: np.ndarray, sr: int, rng: np.random.Generator, place: Place) -> np.ndarray:
    """Reverberation (an exponentially decaying noise impulse response after the direct
    sound) and the place's colouring (tilt, high-pass, EQ peaks), in one FFT pass."""
    m = max(16, int(place.rt60_s * sr))
    t = np.arange(m) / sr
    tail = rng.standard_normal(m) * np.exp(-6.91 * t / place.rt60_s)
    tail *= 10.0 ** (-place.drr_db / 20.0) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    rir = np.concatenate([[1.0], tail])
    size = fast_len_at_least(len(x) + len(rir))
    f = rfft_freqs(size, sr)
    colour = tilt(f, place.tilt) * band(f, place.highpass_hz, 0.49 * sr, order=1)
    for centre, gain, width in place.eq:
        colour = colour * _peak(f, centre, gain, width)
    spectrum = np.fft.rfft(x, size) * np.fft.rfft(rir, size) * colour
    return np.fft.irfft(spectrum, size)[: len(x)]


# --------------------------------------------------------------------------------------------
# Scene ingredients: ambience beds (rng, n, sr, p) and events (rng, sr, p)
# --------------------------------------------------------------------------------------------
def bed_traffic(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Road traffic: low rumble plus passing vehicles (swells of band noise)."""
    f = rfft_freqs(n, sr)
    rumble = _noise(rng, n, tilt(f, -1.0) * band(f, 30.0, p["cutoff_hz"]))
    rumble *= 1.0 + 0.3 * _walk(rng, n, sr, 0.5)
    swells = np.zeros(n)
    t = np.arange(n) / sr
    for centre in rng.uniform(-1.0, n / sr + 1.0, size=rng.poisson(p["passes_per_s"] * n / sr)):
        swells += np.exp(-0.5 * ((t - centre) / rng.uniform(0.4, 1.5)) ** 2)
    passes = _noise(rng, n, tilt(f, -0.5) * band(f, 150.0, 2.5 * p["cutoff_hz"])) * swells
    return rumble + 1.5 * passes


def bed_engine(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """A vehicle engine or electric drive: harmonic drone with a wandering speed, and noise."""
    f0 = p["f0_hz"] * (1.0 + 0.03 * _walk(rng, n, sr, 0.3))
    f = rfft_freqs(n, sr)
    # A sawtooth has 1/k partials; the tilt makes them fall off as k^-rolloff.
    tone = filter_magnitude(_saw(f0, sr, rng), tilt(f, 1.0 - p["rolloff"], p["f0_hz"]))
    return unit_rms(tone) + 0.7 * _noise(rng, n, tilt(f, -1.0) * band(f, 40.0, 1500.0))


def bed_babble(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Crowd babble: voiced harmonic streams and breathy noise, syllable-rate modulated,
    through speech formant regions (``formant_shift`` varies by place)."""
    f = rfft_freqs(n, sr)
    shift = p["formant_shift"]
    formants = _peak(f, 500 * shift, 12, 0.6) * _peak(f, 1500 * shift, 9, 0.6)
    out = np.zeros(n)
    for _ in range(int(p["voices"])):
        am = np.clip(_walk(rng, n, sr, rng.uniform(3.0, 6.0)) + 0.3, 0.0, None)
        f0 = rng.uniform(90, 240) * (1.0 + 0.08 * _walk(rng, n, sr, 2.0))
        out += am * _saw(f0, sr, rng)
    voiced = np.fft.irfft(np.fft.rfft(out) * formants * band(f, 100, 4000), n)
    breath = _noise(rng, n, formants * band(f, 200, 6000))
    return unit_rms(voiced) + 0.4 * breath * (1 + 0.5 * _walk(rng, n, sr, 4.0))


def bed_wind(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Wind in gusts (broad noise whose level follows a slow walk)."""
    f = rfft_freqs(n, sr)
    gust = np.clip(1.0 + 0.6 * _walk(rng, n, sr, p["gust_hz"]), 0.1, None)
    return _noise(rng, n, tilt(f, -0.8) * band(f, 40.0, 3000.0)) * gust


def bed_foliage(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Rustling leaves or water: high band noise with fast random amplitude."""
    f = rfft_freqs(n, sr)
    am = np.clip(1.0 + 0.8 * _walk(rng, n, sr, p["flutter_hz"]), 0.05, None)
    return _noise(rng, n, band(f, p["low_hz"], min(9000.0, 0.45 * sr))) * am


def bed_hum(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Mains hum, fans and ventilation: a few harmonics of ``hum_hz`` plus band noise."""
    t = np.arange(n) / sr
    tone = sum(
        rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * p["hum_hz"] * t + rng.uniform(0, 6.3))
        for k in range(1, 6)
    )
    f = rfft_freqs(n, sr)
    air = _noise(rng, n, tilt(f, -0.5) * band(f, 100.0, p["air_hz"]))
    return 0.6 * unit_rms(tone) + air


def bed_room(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Quiet room tone: pink-ish noise."""
    f = rfft_freqs(n, sr)
    return _noise(rng, n, tilt(f, -0.6) * band(f, 30.0, 8000.0))


def bed_music(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Background music: a slow chord progression of soft harmonic tones."""
    out = np.zeros(n)
    chord_len = int(rng.uniform(1.0, 2.0) * sr)
    root = p["root_hz"]
    for start in range(0, n, chord_len):
        m = min(chord_len, n - start)
        base = root * 2.0 ** (rng.integers(0, 12) / 12.0)
        for interval in (0, 4, 7):
            f0 = np.full(m, base * 2.0 ** (interval / 12.0))
            k = np.arange(1, 8)
            out[start : start + m] += _harmonics(f0, sr, k**-2.0, k.astype(float), rng) * _decay(
                m, sr, 1.5, 0.05
            )
    return out


def ev_step(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A footstep: a short low thump with a click."""
    m = int(0.08 * sr)
    f = rfft_freqs(m, sr)
    return _noise(rng, m, band(f, 60.0, p["step_hz"])) * _decay(m, sr, 0.015)


def ev_chirp(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A bird call: a trill of short frequency sweeps."""
    notes = []
    start_hz = min(p["bird_hz"] * rng.uniform(0.8, 1.25), 0.4 * sr)
    for _ in range(int(rng.integers(1, 6))):
        m = int(rng.uniform(0.04, 0.15) * sr)
        sweep = start_hz * np.exp(np.linspace(0, rng.uniform(-0.5, 0.4), m))
        sweep = np.minimum(sweep, 0.44 * sr)
        tone = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.hanning(m)
        notes += [tone, np.zeros(int(rng.uniform(0.02, 0.08) * sr))]
    return np.concatenate(notes)


def ev_clink(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Cutlery or glass: inharmonic partials ringing down."""
    m = int(rng.uniform(0.2, 0.5) * sr)
    t = np.arange(m) / sr
    f0 = min(rng.uniform(1200, 3500), 0.15 * sr)
    out = sum(
        rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f0 * r * t) * np.exp(-t / rng.uniform(0.03, 0.2))
        for r in (1.0, 2.76, 5.40)
        if f0 * r < 0.45 * sr
    )
    return out * np.minimum(1.0, t / 0.001)


def ev_beep(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A checkout scanner beep."""
    m = int(rng.uniform(0.08, 0.2) * sr)
    t = np.arange(m) / sr
    return np.sin(2 * np.pi * p["beep_hz"] * t) * np.hanning(m) ** 0.2


def ev_typing(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A burst of keystrokes."""
    keys = int(rng.integers(3, 15))
    out = np.zeros(int(keys * 0.2 * sr) + int(0.02 * sr))
    m = int(0.012 * sr)
    f = rfft_freqs(m, sr)
    for start in np.cumsum(rng.uniform(0.06, 0.2, size=keys)) * sr:
        click = _noise(rng, m, band(f, 1500.0, 7000.0)) * _decay(m, sr, 0.003)
        out[int(start) : int(start) + m] += click[: len(out) - int(start)]
    return 0.5 * out


def ev_page(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Paper handling: a short swoosh of high band noise."""
    m = int(rng.uniform(0.15, 0.5) * sr)
    f = rfft_freqs(m, sr)
    return _noise(rng, m, band(f, 1500.0, 7500.0)) * np.hanning(m)


def ev_chime(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A public-address chime: three decaying bell tones."""
    tones = []
    for step in (0, -4, -7):
        m = int(0.45 * sr)
        f0 = np.full(m, p["chime_hz"] * 2.0 ** (step / 12.0))
        tones.append(_harmonics(f0, sr, np.array([1.0, 0.4, 0.2]), np.array([1, 2, 3.0]), rng))
        tones[-1] *= _decay(m, sr, 0.25, 0.005)
    return np.concatenate(tones)


def ev_rail(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Wheels over a rail joint: a pair of low thumps."""
    m = int(0.07 * sr)
    f = rfft_freqs(m, sr)
    thump = _noise(rng, m, band(f, 40.0, 400.0)) * _decay(m, sr, 0.02)
    gap = np.zeros(int(p["bogie_s"] * sr))
    return np.concatenate([thump, gap, thump])


def ev_squeal(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Brake or wheel squeal: a narrow tone with a little vibrato."""
    m = int(rng.uniform(0.4, 1.5) * sr)
    t = np.arange(m) / sr
    f0 = min(p["squeal_hz"] * rng.uniform(0.9, 1.1), 0.4 * sr)
    freq = f0 * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 9) * t))
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.hanning(m) ** 0.5


def ev_thud(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A door, a bag put down: a low thud."""
    m = int(0.25 * sr)
    f = rfft_freqs(m, sr)
    return _noise(rng, m, band(f, 40.0, 250.0)) * _decay(m, sr, 0.05)


BEDS: dict[str, Callable] = {
    "traffic": bed_traffic,
    "engine": bed_engine,
    "babble": bed_babble,
    "wind": bed_wind,
    "foliage": bed_foliage,
    "hum": bed_hum,
    "room": bed_room,
    "music": bed_music,
}
EVENTS: dict[str, Callable] = {
    "step": ev_step,
    "chirp": ev_chirp,
    "clink": ev_clink,
    "beep": ev_beep,
    "typing": ev_typing,
    "page": ev_page,
    "chime": ev_chime,
    "rail": ev_rail,
    "squeal": ev_squeal,
    "thud": ev_thud,
}


@dataclass(frozen=True)
class SceneRecipe:
    """What a scene is made of: bed levels in dB, event rates per second, and its space."""

    beds: dict[str, float]
    events: dict[str, float]
    #: Reverberation time range (s): rooms and vehicles echo, open air hardly.
    rt60_s: tuple[float, float] = (0.05, 0.25)
    #: Overrides of the place-drawn ingredient parameters (e.g. an electric drive's pitch).
    params: tuple[tuple[str, tuple[float, float]], ...] = ()


OUTDOOR, INDOOR, VEHICLE = (0.05, 0.2), (0.4, 1.2), (0.15, 0.45)

#: TUT2017-like scenes. Shared ingredients make some scenes close to others on purpose.
SCENE_RECIPES: dict[str, SceneRecipe] = {
    "bus": SceneRecipe(
        {"engine": 0, "traffic": -6, "babble": -12, "hum": -16},
        {"squeal": 0.05, "thud": 0.15, "step": 0.2},
        VEHICLE,
    ),
    "cafe_restaurant": SceneRecipe(
        {"babble": 0, "hum": -12, "music": -14, "room": -16},
        {"clink": 1.0, "step": 0.3, "thud": 0.1},
        INDOOR,
    ),
    "city_center": SceneRecipe(
        {"traffic": 0, "babble": -6, "wind": -14},
        {"step": 1.0, "chirp": 0.1, "squeal": 0.03},
        OUTDOOR,
    ),
    "forest_path": SceneRecipe(
        {"wind": 0, "foliage": -5, "traffic": -22},
        {"chirp": 0.7, "step": 0.5},
        OUTDOOR,
    ),
    "grocery_store": SceneRecipe(
        {"hum": -3, "babble": -4, "music": -12, "room": -12},
        {"beep": 0.6, "clink": 0.2, "step": 0.4, "thud": 0.1},
        INDOOR,
    ),
    "home": SceneRecipe(
        {"room": 0, "hum": -10, "music": -16},
        {"clink": 0.2, "step": 0.2, "thud": 0.15, "page": 0.05},
        INDOOR,
    ),
    "library": SceneRecipe(
        {"room": 0, "hum": -6, "babble": -20},
        {"page": 0.3, "step": 0.2, "typing": 0.1},
        INDOOR,
    ),
    "metro_station": SceneRecipe(
        {"hum": -3, "babble": -4, "traffic": -8},
        {"chime": 0.05, "step": 1.0, "squeal": 0.05, "rail": 0.2},
        INDOOR,
        (("cutoff_hz", (150.0, 300.0)),),
    ),
    "office": SceneRecipe(
        {"hum": 0, "room": -6, "babble": -14},
        {"typing": 0.6, "page": 0.1, "step": 0.1},
        INDOOR,
    ),
    "park": SceneRecipe(
        {"wind": -3, "traffic": -11, "babble": -12, "foliage": -10},
        {"chirp": 0.5, "step": 0.4},
        OUTDOOR,
    ),
}

#: TAU 2020 scenes (for ``scenes3``).
TAU_RECIPES: dict[str, SceneRecipe] = {
    "airport": SceneRecipe(
        {"babble": -3, "hum": -3, "room": -10, "engine": -20},
        {"chime": 0.05, "step": 0.8, "thud": 0.1},
        INDOOR,
        (("f0_hz", (60.0, 110.0)),),
    ),
    "shopping_mall": SceneRecipe(
        {"babble": 0, "music": -8, "hum": -8},
        {"step": 0.6, "clink": 0.2, "beep": 0.05},
        INDOOR,
    ),
    "metro_station": SceneRecipe(
        {"hum": -3, "babble": -6, "traffic": -6},
        {"chime": 0.05, "rail": 0.3, "squeal": 0.05, "step": 0.8},
        INDOOR,
        (("cutoff_hz", (150.0, 300.0)),),
    ),
    "street_pedestrian": SceneRecipe(
        {"babble": -3, "traffic": -8, "wind": -15},
        {"step": 1.0, "chirp": 0.1},
        OUTDOOR,
    ),
    "public_square": SceneRecipe(
        {"babble": -6, "traffic": -10, "wind": -10, "foliage": -10},
        {"step": 0.5, "chirp": 0.3},
        OUTDOOR,
    ),
    "street_traffic": SceneRecipe(
        {"traffic": 0, "engine": -8, "wind": -15},
        {"squeal": 0.05, "step": 0.2},
        OUTDOOR,
    ),
    "park": SceneRecipe(
        {"wind": -3, "foliage": -8, "traffic": -14},
        {"chirp": 0.8, "step": 0.3},
        OUTDOOR,
    ),
    "tram": SceneRecipe(
        {"engine": -4, "babble": -10, "traffic": -10},
        {"rail": 0.8, "squeal": 0.1, "chime": 0.05},
        VEHICLE,
        (("f0_hz", (180.0, 400.0)),),
    ),
    "bus": SceneRecipe(
        {"engine": 0, "traffic": -8, "babble": -12},
        {"squeal": 0.05, "thud": 0.1},
        VEHICLE,
    ),
    "metro": SceneRecipe(
        {"hum": -6, "traffic": -3, "engine": -6},
        {"rail": 1.2, "squeal": 0.1, "chime": 0.05},
        VEHICLE,
        (("f0_hz", (250.0, 500.0)), ("cutoff_hz", (150.0, 300.0))),
    ),
}


def _place_params(rng: np.random.Generator) -> dict[str, float]:
    """Ingredient parameters that a recording place fixes (engine pitch, bird species, ...)."""
    return {
        "cutoff_hz": rng.uniform(300.0, 900.0),
        "passes_per_s": rng.uniform(0.1, 0.6),
        "f0_hz": rng.uniform(35.0, 120.0),
        "rolloff": rng.uniform(0.8, 1.6),
        "formant_shift": rng.uniform(0.85, 1.2),
        "voices": float(rng.integers(3, 10)),
        "gust_hz": rng.uniform(0.2, 1.0),
        "flutter_hz": rng.uniform(5.0, 20.0),
        "low_hz": rng.uniform(1000.0, 3000.0),
        "air_hz": rng.uniform(800.0, 4000.0),
        # Mains hum or a fan's blade rate.
        "hum_hz": float(rng.choice([50.0, 60.0])) if rng.random() < 0.5 else rng.uniform(80, 200),
        "root_hz": rng.uniform(110.0, 330.0),
        "step_hz": rng.uniform(300.0, 1500.0),
        "bird_hz": rng.uniform(2000.0, 6000.0),
        "beep_hz": rng.uniform(1000.0, 3200.0),
        "chime_hz": rng.uniform(500.0, 1000.0),
        "bogie_s": rng.uniform(0.1, 0.25),
        "squeal_hz": rng.uniform(1800.0, 5000.0),
    }


@dataclass(frozen=True)
class Place:
    """How one recording place sounds: ingredient parameters, mix offsets, space, colouring."""

    params: dict[str, float]
    bed_offsets_db: dict[str, float]
    event_factors: dict[str, float]
    rt60_s: float
    drr_db: float
    tilt: float
    eq: tuple[tuple[float, float, float], ...]  # (centre Hz, gain dB, width octaves)
    highpass_hz: float
    level_dbfs: float


def _draw_place(
    rng: np.random.Generator, recipe: SceneRecipe, city: dict[str, float] | None = None
) -> Place:
    """A recording place of ``recipe`` (in ``city``, whose parameters it inherits in part)."""
    params = _place_params(rng)
    for name, (low, high) in recipe.params:
        params[name] = rng.uniform(low, high)
    eq = [(rng.uniform(150, 6000), rng.uniform(-6, 6), rng.uniform(0.5, 1.5)) for _ in range(2)]
    colour_tilt = rng.uniform(-0.25, 0.25)
    if city is not None:
        # A city: its mains frequency, the timbre of its crowds and streets, and its own
        # colouring on top of each place's.
        params["formant_shift"] = city["formant_shift"] * rng.uniform(0.95, 1.05)
        params["cutoff_hz"] *= city["traffic_scale"]
        eq.append((city["eq_hz"], city["eq_db"], 1.0))
        colour_tilt += city["tilt"]
    if city is not None and rng.random() < 0.6:
        params["hum_hz"] = city["mains_hz"]
    return Place(
        params=params,
        bed_offsets_db={b: rng.uniform(-5.0, 5.0) for b in BEDS},
        event_factors={e: float(np.exp(rng.normal(0.0, 0.5))) for e in EVENTS},
        rt60_s=rng.uniform(*recipe.rt60_s),
        drr_db=rng.uniform(0.0, 10.0),
        tilt=colour_tilt,
        eq=tuple(eq),
        highpass_hz=rng.uniform(20.0, 150.0),
        level_dbfs=rng.uniform(-32.0, -20.0),
    )


def _draw_city(rng: np.random.Generator) -> dict[str, float]:
    return {
        "formant_shift": rng.uniform(0.85, 1.2),
        "traffic_scale": rng.uniform(0.7, 1.4),
        "eq_hz": rng.uniform(200.0, 8000.0),
        "eq_db": rng.uniform(-5.0, 5.0),
        "tilt": rng.uniform(-0.15, 0.15),
        "mains_hz": 60.0 if rng.random() < 0.3 else 50.0,
    }


#: Ingredients heard faintly in every scene (overlapping ambiences), in dB below the mix.
SHARED_BEDS: dict[str, tuple[float, float]] = {"traffic": (-30.0, -16.0), "room": (-30.0, -18.0)}


def render_scene(
    rng: np.random.Generator, recipe: SceneRecipe, place: Place, n: int, sr: int
) -> np.ndarray:
    """One clip of a scene at a place: beds and events mixed, reverberated, coloured, levelled."""
    mix = np.zeros(n)
    beds = dict(recipe.beds)
    for bed, (low, high) in SHARED_BEDS.items():
        if bed not in beds:
            beds[bed] = rng.uniform(low, high)
    for bed in sorted(beds):
        gain_db = beds[bed] + place.bed_offsets_db[bed] + rng.uniform(-2.0, 2.0)
        mix += 10.0 ** (gain_db / 20.0) * unit_rms(BEDS[bed](rng, n, sr, place.params))
    for event in sorted(recipe.events):
        layer = np.zeros(n)
        rate = recipe.events[event] * place.event_factors[event]
        _place(layer, sr, rng, rate, lambda e=event: EVENTS[e](rng, sr, place.params))
        if np.any(layer):
            # Events are set relative to the beds' level, with their own spread.
            mix += (
                10.0 ** (rng.uniform(-6.0, 2.0) / 20.0) * layer / max(np.max(np.abs(layer)), 1e-9)
            )
    mix = _room_and_colour(mix, sr, rng, place)
    return _level(mix, place.level_dbfs + rng.uniform(-2.0, 2.0))
