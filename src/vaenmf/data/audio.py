"""Audio file I/O and resampling.

Everything downstream works on 1-D float32 torch waveforms in [-1, 1]. This module is the only place that
touches audio files. It reads:

- NIST SPHERE (``NIST_1A``, the original TIMIT ``.WAV`` files) and RIFF WAVE (converted TIMIT, NOISEX-92
  re-encodings), told apart by their first bytes rather than by the extension, because both carry ``.WAV``;
- MAT v5 files in the NOISEX-92 style (one variable named after the file, int16-scale values, no rate).

Both file kinds are decoded by ``soundfile`` (libsndfile), never ``torchaudio.load``: torchaudio's I/O backends
vary between versions and platforms, libsndfile reads SPHERE and RIFF identically everywhere. libsndfile does
not reliably complain about a file cut short (it silently returns the samples that are there), so the
declared data size in the SPHERE header / RIFF ``data`` chunk is checked against the file size here.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vaenmf.errors import AudioReadError, DataError
from vaenmf.validation import as_int

__all__ = [
    "NOISEX_SAMPLE_RATE",
    "read_audio",
    "resample",
    "write_wav",
    "read_sphere_header",
]

#: Sample rate of the original NOISEX-92 recordings (their ``.mat`` files carry no rate).
NOISEX_SAMPLE_RATE = 19980

_SPHERE_MAGIC = b"NIST_1A"
_RIFF_MAGICS = (b"RIFF", b"RIFX", b"RF64")
# Other containers libsndfile reads; accepted so that a user's FLAC/OGG/AIFF copy of a corpus also works.
_OTHER_SF_MAGICS = (b"fLaC", b"OggS", b"FORM")


def read_audio(
    path: str | os.PathLike[str],
    target_sr: int | None = None,
    mat_sample_rate: int = NOISEX_SAMPLE_RATE,
) -> tuple[torch.Tensor, int]:
    """Read an audio file as a mono float32 waveform in [-1, 1].

    The format is told from the first bytes: ``NIST_1A`` (SPHERE), ``RIFF``/``RIFX``/``RF64`` (WAVE),
    ``MATLAB`` or a ``.mat`` suffix (MAT v5), FLAC/OGG/AIFF. Multi-channel audio is averaged to mono.

    ``.mat`` files follow NOISEX-92: the signal is the variable named after the file stem (``factory1.mat``
    -> ``factory1``, case-insensitive), or the only non-``__`` array variable when that name is absent.
    Values at int16 scale (max |x| > 1) are divided by 32768 (and peak-normalised to 1 if they still
    overshoot, which filtered re-exports do). A ``.mat`` file has no sample rate, so
    ``mat_sample_rate`` (NOISEX-92: 19980 Hz) is taken as its rate.

    Args:
        path: Audio file.
        target_sr: Resample to this rate when given (and different from the file's rate).
        mat_sample_rate: Sample rate assumed for ``.mat`` files.

    Returns:
        ``(wave, sr)``: the waveform and its sample rate (``target_sr`` when given).

    Shape:
        - wave: ``(time,)``, float32.

    Raises:
        AudioReadError: If the file is missing, of an unknown format, truncated, empty, contains NaN/inf, or
            (``.mat``) holds no usable signal variable. The message names the file and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "missing"
        raise AudioReadError(f"cannot read audio {path}: {what}; expected an existing audio file")
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise AudioReadError(f"cannot read audio {path}: {exc.strerror or exc}") from exc

    if head.startswith(_SPHERE_MAGIC):
        data, sr = _read_sphere(path)
    elif head[:4] in _RIFF_MAGICS:
        data, sr = _read_riff(path)
    elif head.startswith(b"MATLAB") or path.suffix.lower() == ".mat":
        data, sr = _read_mat(path, mat_sample_rate)
    elif head[:4] in _OTHER_SF_MAGICS:
        data, sr = _soundfile_read(path, "audio")
    else:
        shown = head[:8]
        raise AudioReadError(
            f"cannot read audio {path}: unknown format (first bytes {shown!r}); expected NIST SPHERE "
            "('NIST_1A'), RIFF WAVE ('RIFF'), a MATLAB v5 .mat file, FLAC, OGG or AIFF"
        )

    wave = _to_mono(data)
    _check_samples(wave, path)
    tensor = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if target_sr is not None and int(target_sr) != sr:
        tensor = resample(tensor, sr, int(target_sr))
        sr = int(target_sr)
    return tensor, int(sr)


def read_sphere_header(path: str | os.PathLike[str]) -> dict[str, int | float | str]:
    """Parse the header of a NIST SPHERE file.

    Args:
        path: A file starting with ``NIST_1A``.

    Returns:
        The header fields (``-i`` as int, ``-r`` as float, ``-sN`` as str), plus ``header_bytes``.

    Raises:
        AudioReadError: If the file is not SPHERE or its header is malformed.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            first = f.read(16)
            if not first.startswith(_SPHERE_MAGIC):
                raise AudioReadError(f"{path} is not a NIST SPHERE file (no 'NIST_1A' magic)")
            lines = first.split(b"\n")
            try:
                header_bytes = int(lines[1])
            except (IndexError, ValueError):
                raise AudioReadError(
                    f"{path}: malformed SPHERE header; expected 'NIST_1A\\n   1024\\n' at the start"
                ) from None
            f.seek(0)
            raw = f.read(header_bytes)
    except OSError as exc:
        raise AudioReadError(f"cannot read audio {path}: {exc.strerror or exc}") from exc
    if len(raw) < header_bytes:
        raise AudioReadError(
            f"{path}: truncated SPHERE file: the header declares {header_bytes} bytes but the file has "
            f"{len(raw)} bytes"
        )
    fields: dict[str, int | float | str] = {"header_bytes": header_bytes}
    for line in raw.split(b"\n")[2:]:
        text = line.decode("latin-1").strip()
        if not text:
            continue
        if text == "end_head":
            break
        parts = text.split(None, 2)
        if len(parts) < 3:
            continue
        key, kind, value = parts
        try:
            if kind == "-i":
                fields[key] = int(value)
            elif kind == "-r":
                fields[key] = float(value)
            else:
                fields[key] = value
        except ValueError:
            raise AudioReadError(f"{path}: malformed SPHERE header field {text!r}") from None
    else:
        raise AudioReadError(f"{path}: malformed SPHERE header: no 'end_head' within {header_bytes} bytes")
    return fields


def _read_sphere(path: Path) -> tuple[np.ndarray, int]:
    header = read_sphere_header(path)
    coding = str(header.get("sample_coding", "pcm")).lower()
    if "shorten" in coding or "wavpack" in coding:
        raise AudioReadError(
            f"{path}: SPHERE file compressed with {coding!r}, which soundfile cannot decode; expected "
            "uncompressed PCM (decompress it first, e.g. `sph2pipe -f wav`)"
        )
    n_samples = header.get("sample_count")
    if isinstance(n_samples, int):
        channels = int(header.get("channel_count", 1))
        width = int(header.get("sample_n_bytes", 2))
        expected = n_samples * channels * width
        available = path.stat().st_size - int(header["header_bytes"])
        if available < expected:
            raise AudioReadError(
                f"{path}: truncated SPHERE file: header declares sample_count={n_samples} "
                f"({expected} data bytes) but only {max(available, 0)} bytes follow the header"
            )
    return _soundfile_read(path, "NIST SPHERE")


def _read_riff(path: Path) -> tuple[np.ndarray, int]:
    size = path.stat().st_size
    with path.open("rb") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[8:12] != b"WAVE":
            raise AudioReadError(
                f"{path}: malformed RIFF file; expected 'RIFF....WAVE' in the first 12 bytes"
            )
        endian = ">" if riff[:4] == b"RIFX" else "<"
        pos = 12
        # Walk the chunks up to 'data' and compare its declared size with what the file really holds.
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise AudioReadError(
                    f"{path}: truncated RIFF file: no 'data' chunk found in {size} bytes; expected a complete "
                    "WAVE file"
                )
            cid = chunk[:4]
            (csize,) = struct.unpack(endian + "I", chunk[4:])
            if cid == b"data":
                # 0 and 0xFFFFFFFF mark streamed / RF64 files whose real size lives elsewhere.
                if csize not in (0, 0xFFFFFFFF) and pos + 8 + csize > size:
                    raise AudioReadError(
                        f"{path}: truncated RIFF file: the 'data' chunk declares {csize} bytes but only "
                        f"{size - pos - 8} bytes are present"
                    )
                break
            pos += 8 + csize + (csize & 1)
    return _soundfile_read(path, "RIFF WAVE")


def _soundfile_read(path: Path, what: str) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as exc:
        raise AudioReadError(f"cannot decode {what} file {path}: {exc}") from exc
    return data, int(sr)


def _read_mat(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    import scipy.io

    try:
        variables = scipy.io.loadmat(str(path))
    except NotImplementedError as exc:
        # scipy raises this for MAT v7.3 (HDF5) files.
        raise AudioReadError(
            f"cannot read {path}: MAT v7.3 (HDF5) files are not supported; expected MAT v5 "
            "(re-save with `save(..., '-v7')` in MATLAB)"
        ) from exc
    except Exception as exc:  # scipy raises many types (ValueError, TypeError, MatReadError) on bad files
        raise AudioReadError(f"cannot read {path}: not a readable MAT v5 file ({exc})") from exc
    arrays = {k: v for k, v in variables.items() if not k.startswith("__")}
    stem = path.stem
    by_lower = {k.lower(): k for k in arrays}
    if stem in arrays:
        key = stem
    elif stem.lower() in by_lower:
        key = by_lower[stem.lower()]
    elif len(arrays) == 1:
        key = next(iter(arrays))
    else:
        raise AudioReadError(
            f"{path}: expected a variable named {stem!r} (NOISEX-92 style) or exactly one array variable; "
            f"found {sorted(arrays) or 'none'}"
        )
    value = arrays[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf":
        raise AudioReadError(
            f"{path}: variable {key!r} is not a numeric array (got {type(value).__name__}"
            f"{'' if not isinstance(value, np.ndarray) else ' of dtype ' + str(value.dtype)})"
        )
    data = np.asarray(value, dtype=np.float64)
    data = np.squeeze(data)
    if data.ndim == 0 or data.size == 0:
        raise AudioReadError(f"{path}: variable {key!r} holds no samples; expected a signal vector")
    if data.ndim > 2:
        raise AudioReadError(f"{path}: variable {key!r} has shape {value.shape}; expected a vector")
    if data.ndim == 2 and data.shape[0] < data.shape[1]:
        # Stored as (channels, samples): time runs along the longer axis.
        data = data.T
    if data.ndim == 1:
        data = data[:, None]
    if not np.isfinite(data).all():
        raise AudioReadError(f"{path}: variable {key!r} contains NaN or infinite values")
    peak = float(np.abs(data).max())
    if peak > 1.0:
        data = data / 32768.0
        # Some NOISEX re-exports were filtered after quantisation and overshoot int16 range slightly
        # (limingshi's factoryNoise.mat peaks at 34109); keep the [-1, 1] contract by peak-normalising those.
        # The absolute level of a noise file is irrelevant: it is rescaled to the target SNR when mixed.
        if peak > 32768.0:
            data = data * (32768.0 / peak)
    return data.astype(np.float32), int(sample_rate)


def _to_mono(data: np.ndarray) -> np.ndarray:
    if data.ndim == 2:
        return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    return data


def _check_samples(wave: np.ndarray, path: Path) -> None:
    if wave.size == 0:
        raise AudioReadError(f"{path}: the file holds no samples; expected a nonempty recording")
    if not np.isfinite(wave).all():
        n_bad = int((~np.isfinite(wave)).sum())
        raise AudioReadError(f"{path}: {n_bad} samples are NaN or infinite; expected finite audio")


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample a waveform with a windowed-sinc filter (``torchaudio.functional.resample``).

    19980 -> 16000 Hz (NOISEX-92 to the pipeline rate) reduces to 999 -> 800, which the polyphase
    implementation handles directly. No-op (same tensor) when the rates are equal.

    Args:
        wave: Waveform(s), resampled along the last axis.
        orig_sr: Sample rate of ``wave`` in Hz (positive integer).
        new_sr: Target sample rate in Hz (positive integer).

    Returns:
        The resampled waveform, ``ceil(time * new_sr / orig_sr)`` samples long.

    Shape:
        - wave: ``(..., time)``.
        - output: ``(..., ceil(time * new_sr / orig_sr))``.
    """
    orig_sr, new_sr = (
        as_int(rate, name, minimum=1, error=DataError, hint="a sample rate in Hz")
        for name, rate in (("orig_sr", orig_sr), ("new_sr", new_sr))
    )
    if orig_sr == new_sr:
        return wave
    import torchaudio.functional as AF  # deferred: torchaudio is slow to import and only needed here

    if not wave.is_floating_point():
        wave = wave.to(torch.float32)
    g = math.gcd(orig_sr, new_sr)
    return AF.resample(wave, orig_sr // g, new_sr // g)


def write_wav(
    path: str | os.PathLike[str], wave: torch.Tensor | np.ndarray, sr: int, subtype: str = "PCM_16"
) -> Path:
    """Write a mono waveform as a RIFF WAVE file.

    For integer subtypes the samples are clipped to [-1, 1] first, because libsndfile would otherwise wrap
    out-of-range values around (a loud click instead of a clipped peak).

    Args:
        path: Output file; parent folders are created.
        wave: Mono waveform in [-1, 1].
        sr: Sample rate in Hz.
        subtype: ``"PCM_16"`` (default), ``"PCM_24"``, ``"FLOAT"``, ...

    Returns:
        The path written.

    Shape:
        - wave: ``(time,)``.
    """
    path = Path(path)
    data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 1:
        raise DataError(f"write_wav expects a 1-D mono waveform, got shape {tuple(data.shape)} for {path}")
    if not np.isfinite(data).all():
        raise DataError(f"refusing to write {path}: the waveform contains NaN or infinite values")
    if subtype.upper().startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, int(sr), subtype=subtype, format="WAV")
    return path
