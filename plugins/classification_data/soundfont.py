"""Sampled-instrument formats: the SoundFont 2 preset table, GUS patches, and note rendering.

:func:`read_sf2_presets` reads only the ``pdta`` "hydra" of a ``.sf2`` file (preset, instrument
and sample headers): for each melodic preset, the samples its zones play, their key ranges and
root keys, and a content hash of each sample, so that presets sharing recordings (within one
soundfont or across two) can be told apart from distinct instruments. Notes of a soundfont are
rendered by libfluidsynth (:class:`FluidRenderer`, reverb and chorus off).

GUS patches (``.pat``, FreePats) are read by :func:`read_gus_patch` and played by
:func:`render_gus_note`: the sample whose frequency range holds the note, resampled to its
pitch, looped while held, with a 1 s release.

:func:`write_sf2` writes a minimal soundfont (one sample per preset), for tests that must run
without the Debian packages.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sedkit.errors import InputFileError

__all__ = [
    "FluidRenderer",
    "GusSample",
    "SF2Preset",
    "read_gus_patch",
    "read_sf2_presets",
    "render_gus_note",
    "write_sf2",
]

# SoundFont 2.04 generator numbers used here.
_GEN_KEY_RANGE, _GEN_INSTRUMENT, _GEN_SAMPLE_ID, _GEN_ROOT_KEY = 43, 41, 53, 58
_RECORDS = {  # pdta sub-chunk: (struct format, record size)
    "phdr": ("<20sHHHIII", 38),
    "pbag": ("<HH", 4),
    "pgen": ("<HH", 4),
    "inst": ("<20sH", 22),
    "ibag": ("<HH", 4),
    "igen": ("<HH", 4),
    "shdr": ("<20sIIIIIBbHH", 46),
}


@dataclass
class SF2Preset:
    """One melodic preset: bank, program, name and what its zones play."""

    bank: int
    program: int
    name: str
    #: (sample content hash, lowest key, highest key, root key) of each zone.
    zones: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def samples(self) -> set[str]:
        """Content hashes of the recordings this preset plays."""
        return {z[0] for z in self.zones}

    def pitch_range(self, lowest: int = 21, highest: int = 108, stretch: int = 12) -> range:
        """MIDI pitches the preset covers, at most ``stretch`` semitones from a recorded root
        (farther transpositions sound like another instrument), within ``lowest..highest``
        (NSynth's 21..108)."""
        if not self.zones:
            return range(0)
        low = max(lowest, min(z[1] for z in self.zones), min(z[3] for z in self.zones) - stretch)
        high = min(highest, max(z[2] for z in self.zones), max(z[3] for z in self.zones) + stretch)
        return range(low, high + 1)


def _chunks(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    """RIFF sub-chunks in ``data[start:end]``: id (or LIST type) -> (offset, size)."""
    found, pos = {}, start
    while pos + 8 <= end:
        cid, size = struct.unpack_from("<4sI", data, pos)
        key = cid.decode("latin-1")
        if key == "LIST":
            key = data[pos + 8 : pos + 12].decode("latin-1")
            found[key] = (pos + 12, size - 4)
        else:
            found[key] = (pos + 8, size)
        pos += 8 + size + (size & 1)
    return found


def _records(data: bytes, where: tuple[int, int], name: str) -> list[tuple]:
    fmt, size = _RECORDS[name]
    offset, length = where
    return [struct.unpack_from(fmt, data, offset + k * size) for k in range(length // size)]


def _zone_gens(bags: list[tuple], gens: list[tuple], index: int) -> dict[int, int]:
    """Generator number -> raw 16-bit amount of zone ``index`` (bags are one longer)."""
    return {op: amount for op, amount in gens[bags[index][0] : bags[index + 1][0]]}


def _key_range(amount: int | None) -> tuple[int, int]:
    return (0, 127) if amount is None else (amount & 0xFF, amount >> 8)


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def read_sf2_presets(path: str | Path) -> list[SF2Preset]:
    """The melodic presets (banks below 128) of a SoundFont 2 file, sorted by (bank, program).

    Reads the preset tables and hashes each sample's data (SHA-1 of its 16-bit words), so the
    whole file is read once. InputFileError when it is not a SoundFont 2 file.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise InputFileError(path, "not a SoundFont 2 file (no RIFF sfbk header)")
    try:
        return _read_presets(path, data)
    except (struct.error, IndexError, KeyError):
        # A chunk or record reaching past the end, or an index past its table.
        why = "truncated or corrupt SoundFont 2 file (its preset tables are cut short)"
        raise InputFileError(path, why) from None


def _read_presets(path: Path, data: bytes) -> list[SF2Preset]:
    top = _chunks(data, 12, len(data))
    if "pdta" not in top or "sdta" not in top:
        raise InputFileError(path, "SoundFont 2 file without sdta or pdta list")
    pdta = _chunks(data, *_span(top["pdta"]))
    smpl_offset, _ = _chunks(data, *_span(top["sdta"]))["smpl"]
    t = {name: _records(data, pdta[name], name) for name in _RECORDS}
    sample_hash = [
        hashlib.sha1(data[smpl_offset + 2 * s[1] : smpl_offset + 2 * s[2]]).hexdigest()[:16]
        for s in t["shdr"]
    ]
    roots = [s[6] for s in t["shdr"]]
    instruments: list[list[tuple[str, int, int, int]]] = []
    for k in range(len(t["inst"]) - 1):  # the last record is the terminal "EOI"
        zones, global_gens = [], {}
        for z in range(t["inst"][k][1], t["inst"][k + 1][1]):
            gens = _zone_gens(t["ibag"], t["igen"], z)
            if _GEN_SAMPLE_ID not in gens:
                global_gens = gens
                continue
            merged = {**global_gens, **gens}
            sid = gens[_GEN_SAMPLE_ID]
            low, high = _key_range(merged.get(_GEN_KEY_RANGE))
            root = merged.get(_GEN_ROOT_KEY, roots[sid])
            zones.append((sample_hash[sid], low, high, root if root < 128 else roots[sid]))
        instruments.append(zones)
    presets = []
    for k in range(len(t["phdr"]) - 1):
        name, program, bank, bag = t["phdr"][k][:4]
        if bank >= 128:
            continue
        preset = SF2Preset(bank, program, _name(name))
        global_range = (0, 127)
        for z in range(bag, t["phdr"][k + 1][3]):
            gens = _zone_gens(t["pbag"], t["pgen"], z)
            if _GEN_INSTRUMENT not in gens:
                global_range = _key_range(gens.get(_GEN_KEY_RANGE))
                continue
            low, high = (
                _key_range(gens.get(_GEN_KEY_RANGE)) if _GEN_KEY_RANGE in gens else global_range
            )
            for h, zlow, zhigh, root in instruments[gens[_GEN_INSTRUMENT]]:
                if max(low, zlow) <= min(high, zhigh):
                    preset.zones.append((h, max(low, zlow), min(high, zhigh), root))
        presets.append(preset)
    return sorted(presets, key=lambda p: (p.bank, p.program))


def _span(where: tuple[int, int]) -> tuple[int, int]:
    return where[0], where[0] + where[1]


class FluidRenderer:
    """Notes of one soundfont through libfluidsynth, mono float32 at ``sample_rate``.

    Every note is played by a fresh synthesizer: a reused one keeps state of earlier notes in
    its voice pool (the first block of a note ramps from it), which would make a note's samples
    depend on what was rendered before it in the same process. A keeper synthesizer holds the
    soundfont loaded, so that libfluidsynth's sample cache makes each reload cheap (50 ms).
    """

    def __init__(self, lib: ctypes.CDLL, soundfont: str | Path, sample_rate: int):
        self.lib, self.soundfont, self.sample_rate = lib, str(soundfont).encode(), sample_rate
        self.settings = lib.new_fluid_settings()
        lib.fluid_settings_setnum(self.settings, b"synth.sample-rate", float(sample_rate))
        lib.fluid_settings_setint(self.settings, b"synth.reverb.active", 0)
        lib.fluid_settings_setint(self.settings, b"synth.chorus.active", 0)
        lib.fluid_settings_setint(self.settings, b"synth.cpu-cores", 1)
        lib.fluid_settings_setint(self.settings, b"synth.polyphony", 64)
        self.keeper, self.sfont = self._synth()
        if self.sfont < 0:
            self.close()
            raise InputFileError(soundfont, "libfluidsynth cannot load this soundfont")

    def _synth(self) -> tuple[int, int]:
        synth = self.lib.new_fluid_synth(self.settings)
        return synth, self.lib.fluid_synth_sfload(synth, self.soundfont, 0)

    def note(self, bank: int, program: int, pitch: int, velocity: int, n: int, held: int):
        """``n`` samples of ``pitch`` at ``velocity``, released after ``held`` samples."""
        lib = self.lib
        synth = lib.new_fluid_synth(self.settings)
        # The keeper's loaded soundfont is lent (parsing FluidR3 again costs 0.1 s a note) and
        # taken back before the synthesizer is deleted, which would free it.
        font = lib.fluid_synth_get_sfont_by_id(self.keeper, self.sfont)
        sfont = lib.fluid_synth_add_sfont(synth, font)
        try:
            if lib.fluid_synth_program_select(synth, 0, sfont, bank, program) != 0:
                raise ValueError(f"no preset {bank}:{program} in the soundfont")
            left, right = np.zeros(n, np.float32), np.zeros(n, np.float32)
            lib.fluid_synth_noteon(synth, 0, pitch, velocity)
            self._write(synth, left, right, 0, held)
            lib.fluid_synth_noteoff(synth, 0, pitch)
            self._write(synth, left, right, held, n)
        finally:
            lib.fluid_synth_remove_sfont(synth, font)
            lib.delete_fluid_synth(synth)
        return 0.5 * (left + right)

    def _write(self, synth, left: np.ndarray, right: np.ndarray, start: int, stop: int) -> None:
        if stop <= start:
            return
        step = 4 * start  # byte offset of float32 sample ``start``
        lp, rp = left.ctypes.data + step, right.ctypes.data + step
        self.lib.fluid_synth_write_float(synth, stop - start, lp, 0, 1, rp, 0, 1)

    def close(self) -> None:
        """Free the keeper synthesizer and the settings."""
        if self.keeper:
            self.lib.delete_fluid_synth(self.keeper)
            self.keeper = None
        if self.settings:
            self.lib.delete_fluid_settings(self.settings)
            self.settings = None


# --------------------------------------------------------------------------------------------
# GUS patches (FreePats)
# --------------------------------------------------------------------------------------------
@dataclass
class GusSample:
    """One sample of a GUS patch: data, loop, rate and the frequency range it plays (Hz)."""

    data: np.ndarray
    sample_rate: int
    loop: tuple[int, int] | None
    low_hz: float
    high_hz: float
    root_hz: float


def read_gus_patch(path: str | Path) -> list[GusSample]:
    """The samples of a GUS ``.pat`` file (GF1PATCH110/100), as float32 in [-1, 1]."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"GF1PATCH1"):
        raise InputFileError(path, "not a GUS patch (no GF1PATCH header)")
    if len(data) < 239:
        raise InputFileError(path, "truncated GUS patch (no sample header)")
    n_samples = data[198]  # the one layer's sample count (header 129 + instrument 63 + 6)
    pos, samples = 239, []
    for _ in range(n_samples):
        if pos + 96 > len(data):
            raise InputFileError(path, "truncated GUS patch (a sample header ends past the file)")
        length, loop_start, loop_end, rate, low, high, root = struct.unpack_from(
            "<IIIHIII", data, pos + 8
        )
        modes = data[pos + 55]
        pos += 96
        raw = data[pos : pos + length]
        pos += length
        wide = bool(modes & 1)
        if len(raw) < length or wide and length % 2:
            raise InputFileError(path, "truncated GUS patch (a sample ends past the file)")
        dtype = ("<u2" if modes & 2 else "<i2") if wide else ("u1" if modes & 2 else "i1")
        x = np.frombuffer(raw, dtype).astype(np.float64)
        if modes & 2:  # unsigned
            x -= 32768.0 if wide else 128.0
        x /= 32768.0 if wide else 128.0
        width = 2 if wide else 1
        loop = (loop_start // width, loop_end // width) if modes & 4 else None
        if loop is not None and not 0 <= loop[0] < loop[1] <= len(x):
            loop = None
        samples.append(GusSample(x, rate, loop, low / 1000.0, high / 1000.0, root / 1000.0))
    if not samples:
        raise InputFileError(path, "GUS patch without samples")
    return samples


def render_gus_note(
    samples: Sequence[GusSample], pitch: int, velocity: int, n: int, held: int, sample_rate: int
) -> np.ndarray:
    """``n`` samples of MIDI ``pitch`` from a GUS patch: the sample whose frequency range holds
    the note (else the nearest root), resampled (linear) to the pitch and to ``sample_rate``,
    looped while held, then faded out over 1 s; scaled by velocity (linear, as GM)."""
    hz = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    inside = [s for s in samples if s.low_hz <= hz <= s.high_hz]
    s = min(inside or samples, key=lambda s: abs(np.log(hz / max(s.root_hz, 1e-3))))
    step = hz / s.root_hz * s.sample_rate / sample_rate  # source samples per output sample
    # Band-limit the recording below the output's Nyquist frequency (in source terms) first:
    # linear interpolation alone would alias its upper partials into the band.
    spectrum = np.fft.rfft(s.data)
    cutoff = 0.45 * s.sample_rate / step
    f = np.fft.rfftfreq(len(s.data), 1.0 / s.sample_rate)
    data = np.fft.irfft(spectrum / np.sqrt(1.0 + (f / cutoff) ** 16), len(s.data))
    position = np.arange(n) * step
    if s.loop is not None:
        start, end = s.loop
        beyond = position >= end
        position[beyond] = start + np.mod(position[beyond] - start, end - start)
    x = np.interp(position, np.arange(len(data)), data, right=0.0)
    release = np.ones(n)
    fade = min(n - held, sample_rate)
    if fade > 0:
        release[held : held + fade] = np.linspace(1.0, 0.0, fade)
        release[held + fade :] = 0.0
    return (x * release * (velocity / 127.0)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# A minimal SoundFont 2 writer (tests)
# --------------------------------------------------------------------------------------------
def _chunk(cid: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", cid, len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def write_sf2(path: str | Path, presets: Sequence[tuple[int, str, np.ndarray, int, int]]) -> None:
    """A SoundFont 2 file with one looped sample per bank-0 preset: ``(program, name, samples
    (float, 16 kHz), root key, sample rate)`` each. Enough for libfluidsynth and
    :func:`read_sf2_presets`; for tests."""
    smpl, shdr, inst, ibag, igen, phdr, pbag, pgen = b"", b"", b"", b"", b"", b"", b"", b""
    for k, (program, name, wave, root, rate) in enumerate(presets):
        start = len(smpl) // 2
        pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes() + b"\0" * 92  # 46 zeros
        smpl += pcm
        end = start + len(wave)
        shdr += struct.pack(
            "<20sIIIIIBbHH", name.encode()[:20], start, end, start + 8, end - 8, rate, root, 0, 0, 1
        )
        inst += struct.pack("<20sH", name.encode()[:20], k)
        ibag += struct.pack("<HH", 2 * k, 0)
        igen += struct.pack("<HH", 54, 1) + struct.pack("<HH", _GEN_SAMPLE_ID, k)  # looped
        phdr += struct.pack("<20sHHHIII", name.encode()[:20], program, 0, k, 0, 0, 0)
        pbag += struct.pack("<HH", k, 0)
        pgen += struct.pack("<HH", _GEN_INSTRUMENT, k)
    n = len(presets)
    shdr += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    inst += struct.pack("<20sH", b"EOI", n)
    ibag += struct.pack("<HH", 2 * n, 0)
    igen += struct.pack("<HH", 0, 0)
    phdr += struct.pack("<20sHHHIII", b"EOP", 0, 0, n, 0, 0, 0)
    pbag += struct.pack("<HH", n, 0)
    pgen += struct.pack("<HH", 0, 0)
    empty_mod = b"\0" * 10
    pdta = b"pdta" + b"".join(
        _chunk(c, p)
        for c, p in (
            (b"phdr", phdr),
            (b"pbag", pbag),
            (b"pmod", empty_mod),
            (b"pgen", pgen),
            (b"inst", inst),
            (b"ibag", ibag),
            (b"imod", empty_mod),
            (b"igen", igen),
            (b"shdr", shdr),
        )
    )
    info = b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1)) + _chunk(b"INAM", b"sedkit test\0")
    info += _chunk(b"isng", b"EMU8000\0")
    body = _chunk(b"LIST", info) + _chunk(b"LIST", b"sdta" + _chunk(b"smpl", smpl))
    body += _chunk(b"LIST", pdta)
    Path(path).write_bytes(_chunk(b"RIFF", b"sfbk" + body))
