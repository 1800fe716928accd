"""The DESED-like benchmark's configuration: class lists, rooms, devices, the two domains
(synthetic and real) and the presets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sedkit.class_lists import DESED_CLASSES
from sedkit_plugins.desed.distractors import DISTRACTOR_GENERATORS

#: Bumped whenever a change alters the generated files for a given seed and preset.
GENERATOR_VERSION = "2.0"

CLASSES: tuple[str, ...] = DESED_CLASSES
#: Stationary classes whose events last seconds; scaper takes an excerpt of their sources.
LONG_CLASSES: frozenset[str] = frozenset(
    {"Blender", "Electric_shaver_toothbrush", "Frying", "Running_water", "Vacuum_cleaner"}
)
BACKGROUND_KINDS: tuple[str, ...] = (
    "white",
    "pink",
    "brown",
    "mains_hum",
    "room_tone",
    "traffic",
    "ventilation",
)

#: Events per class in the real DESED 2019 validation set (1,168 clips, 4,245 events; counted from
#: the ground truth in shared/reference): the real domain's class prior. Speech is 41 % of them.
DESED_VALIDATION_EVENTS: dict[str, int] = {
    "Alarm_bell_ringing": 420,
    "Blender": 95,
    "Cat": 341,
    "Dishes": 563,
    "Dog": 570,
    "Electric_shaver_toothbrush": 65,
    "Frying": 94,
    "Running_water": 237,
    "Speech": 1753,
    "Vacuum_cleaner": 92,
}

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
Range = tuple[float, float]


@dataclass(frozen=True)
class RoomConfig:
    """Room reverberation: an exponentially decaying noise RIR with early reflections."""

    rt60_s: Range = (0.2, 0.8)
    #: Direct-to-reverberant energy ratio; lower means farther from the microphone.
    drr_db: Range = (0.0, 12.0)


@dataclass(frozen=True)
class DeviceConfig:
    """The recording device: band limits, a bumpy EQ, soft clipping and self noise."""

    highpass_hz: Range = (80.0, 350.0)
    lowpass_hz: Range = (3500.0, 7500.0)
    eq_peaks: int = 3
    #: Each EQ peak's gain is drawn from [-eq_gain_db, +eq_gain_db].
    eq_gain_db: float = 6.0
    #: tanh drive relative to the clip's peak; 1 is nearly linear.
    drive: Range = (1.0, 3.0)
    self_noise_dbfs: Range = (-72.0, -58.0)


@dataclass(frozen=True)
class DomainConfig:
    """How one domain sounds: its sources, backgrounds, mixing levels and recording chain."""

    name: str
    backgrounds: tuple[str, ...]
    snr_db: Range
    #: scaper's reference loudness (LUFS) of the background.
    ref_db: float = -40.0
    #: Source-parameter shifts, drawn per source file (see :class:`SourceStyle`).
    pitch_shift_semitones: Range = (0.0, 0.0)
    tempo_factor: Range = (1.0, 1.0)
    brightness_octaves: Range = (0.0, 0.0)
    room: RoomConfig | None = None
    device: DeviceConfig | None = None
    #: Final peak level drawn per clip; None keeps scaper's level.
    peak_dbfs: Range | None = None
    #: Class prior of the events (weights in CLASSES order); None draws classes uniformly.
    class_weights: tuple[float, ...] | None = None
    #: Events per clip: None draws uniformly in [min_events, max_events] of the SynthConfig;
    #: a number draws 1 + Poisson(extra_events_mean), at most max_events.
    extra_events_mean: float | None = None
    #: Non-target sounds (unlabeled) mixed into each clip: kinds, Poisson mean per clip, SNR.
    distractors: tuple[str, ...] = ()
    distractors_per_clip: float = 0.0
    distractor_snr_db: Range = (0.0, 15.0)
    #: Labels cover the audible reverberation tail, as an annotator marks it: an event ends when
    #: its tail sinks below the background, rt60 * max(0, SNR - DRR) / 60 after the dry offset.
    label_reverb_tail: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.backgrounds) - set(BACKGROUND_KINDS))
        if unknown or not self.backgrounds:
            raise ValueError(
                f"domain {self.name!r}: backgrounds must be a non-empty subset of "
                f"{BACKGROUND_KINDS}, got {self.backgrounds}"
            )
        unknown = sorted(set(self.distractors) - set(DISTRACTOR_GENERATORS))
        if unknown:
            raise ValueError(
                f"domain {self.name!r}: unknown distractors {unknown}; choose from "
                f"{sorted(DISTRACTOR_GENERATORS)}"
            )
        if self.class_weights is not None and (
            len(self.class_weights) != len(CLASSES) or min(self.class_weights) < 0
        ):
            raise ValueError(f"domain {self.name!r}: class_weights needs {len(CLASSES)} weights")


SYNTHETIC_DOMAIN = DomainConfig(
    name="synthetic",
    backgrounds=("white", "pink", "mains_hum"),
    snr_db=(6.0, 30.0),  # DESED 2019 synthetic soundscapes
)
REAL_DOMAIN = DomainConfig(
    name="real",
    backgrounds=("brown", "room_tone", "traffic", "ventilation"),
    snr_db=(3.0, 24.0),
    pitch_shift_semitones=(-3.0, 1.0),
    tempo_factor=(0.8, 1.05),
    brightness_octaves=(-0.6, 0.1),
    room=RoomConfig(),
    # Mild on purpose (generator 2.0): the 1.0 band limits (80-350 Hz to 3.5-7.5 kHz) blanked
    # 5-28 of 64 mel bands, information that no adaptation can bring back.
    device=DeviceConfig(highpass_hz=(50.0, 200.0), lowpass_hz=(5500.0, 7800.0), drive=(1.0, 2.0)),
    peak_dbfs=(-24.0, -3.0),
    class_weights=tuple(float(DESED_VALIDATION_EVENTS[c]) for c in CLASSES),
    extra_events_mean=2.0,
    distractors=tuple(DISTRACTOR_GENERATORS),
    distractors_per_clip=1.0,
    label_reverb_tail=True,
)


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and settings of one benchmark build."""

    sample_rate: int = 16000
    clip_duration_s: float = 10.0
    # DESED 2019's proportions (strong synthetic 2,045 : weak 1,578 : unlabeled 14,412 :
    # validation 1,168) scaled by 0.117 to fit the 15-minute budget of the main recipe on 2 CPU
    # cores (docs/benchmarks.md); eval (real domain, reporting only) and eval_synthetic
    # (held-out synthetic clips, for the domain gap) beside them.
    n_synthetic: int = 240
    n_weak: int = 185
    n_unlabeled: int = 1690
    n_validation: int = 150
    n_eval: int = 200
    n_eval_synthetic: int = 80
    #: Foreground events per clip, drawn uniformly (clips meant to be empty excepted) unless the
    #: domain sets extra_events_mean; never more than max_events.
    min_events: int = 1
    max_events: int = 4
    max_events_real: int = 8
    #: Share of clips without any event (DESED's validation set has a few; weak clips have none).
    empty_fraction_unlabeled: float = 0.1
    empty_fraction_validation: float = 0.05
    #: Source files per class in each of the four disjoint source pools (synthetic train,
    #: synthetic eval, real train, real validation): no waveform crosses a train/test line.
    sources_per_class: int = 30
    #: The real training pool feeds weak and unlabeled clips (about 8x the synthetic ones):
    #: more distinct recordings, as in DESED where every real clip is a new recording.
    sources_per_class_real_train: int = 90
    distractors_per_kind: int = 8
    backgrounds_per_kind: int = 6
    synthetic: DomainConfig = SYNTHETIC_DOMAIN
    real: DomainConfig = REAL_DOMAIN
    #: Worker processes; output is identical for any value.
    n_workers: int = 2

    def __post_init__(self) -> None:
        counts = (
            "n_synthetic",
            "n_weak",
            "n_unlabeled",
            "n_validation",
            "n_eval",
            "n_eval_synthetic",
        )
        problems = [f"{name} must be >= 1" for name in counts if getattr(self, name) < 1]
        if self.sample_rate < 8000:
            problems.append("sample_rate must be >= 8000")
        if self.clip_duration_s < 1.0:
            problems.append("clip_duration_s must be >= 1")
        if not 0 <= self.min_events <= self.max_events or self.max_events_real < 1:
            problems.append("need 0 <= min_events <= max_events and max_events_real >= 1")
        for name in ("empty_fraction_unlabeled", "empty_fraction_validation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1)")
        sizes = (
            "sources_per_class",
            "sources_per_class_real_train",
            "distractors_per_kind",
            "backgrounds_per_kind",
            "n_workers",
        )
        problems += [f"{name} must be >= 1" for name in sizes if getattr(self, name) < 1]
        if problems:
            raise ValueError("SynthConfig: " + "; ".join(problems))


PRESETS: dict[str, SynthConfig] = {
    # For tests: a handful of short clips per subset, built in seconds in one process.
    "tiny": SynthConfig(
        clip_duration_s=4.0,
        n_synthetic=6,
        n_weak=6,
        n_unlabeled=6,
        n_validation=6,
        n_eval=4,
        n_eval_synthetic=4,
        max_events=3,
        max_events_real=4,
        sources_per_class=2,
        sources_per_class_real_train=2,
        distractors_per_kind=1,
        backgrounds_per_kind=1,
        n_workers=1,
    ),
    # Sized for a CRNN recipe that trains in ~15 minutes on 2 CPU cores.
    "default": SynthConfig(),
}
