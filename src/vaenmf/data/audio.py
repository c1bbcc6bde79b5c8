"""Audio file I/O and resampling.

Everything downstream works on 1-D float32 torch waveforms in [-1, 1]. This module is the only place that
touches audio files. It reads:

- NIST SPHERE (``NIST_1A``, the original TIMIT ``.WAV`` files) and RIFF WAVE (converted TIMIT, NOISEX-92
  re-encodings), told apart by their first bytes rather than by the extension, because both carry ``.WAV``;
- MAT v5 files in the NOISEX-92 style (one variable named after the file, int16-scale values, no rate).

Both file kinds are decoded by ``soundfile`` (libsndfile), never ``torchaudio.load``: torchaudio's I/O backends
vary between versions and platforms, libsndfile reads SPHERE and RIFF identically everywhere. libsndfile does
not reliably complain about a file cut short (it silently returns the samples that are there), so the
declared data size in the SPHERE header / RIFF ``data`` chunk / MAT v5 data elements is checked against the
file size here.

:func:`audio_info` reads only the headers (the same checks, no samples decoded), so a whole corpus can be
inventoried in seconds (``vaenmf-data check``). ``torch`` is imported only by the functions that return or take
tensors, so that the header-only path stays quick to start.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from vaenmf.errors import AudioReadError, DataError
from vaenmf.validation import as_int

if TYPE_CHECKING:
    import torch

__all__ = [
    "NOISEX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "AudioInfo",
    "audio_info",
    "check_resample",
    "mat_variables",
    "read_audio",
    "resample",
    "write_wav",
    "write_sphere",
    "read_sphere_header",
]

#: Sample rate of the original NOISEX-92 recordings (their ``.mat`` files carry no rate).
NOISEX_SAMPLE_RATE = 19980
#: Plausible audio sample rates: anything outside is a broken header (0 Hz, 4 GHz) rather than a recording.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000
# torchaudio's polyphase resampler builds a (new, orig + 2 * width) kernel for the reduced rate ratio; above this
# many entries (about 120 MB in float32) the ratio is one no recording needs (e.g. 16001 -> 16000 Hz, a corrupt
# header) and would exhaust memory instead of failing.
_MAX_RESAMPLE_KERNEL = 30_000_000

_SPHERE_MAGIC = b"NIST_1A"
_RIFF_MAGICS = (b"RIFF", b"RIFX", b"RF64")
# Other containers libsndfile reads; accepted so that a user's FLAC/OGG/AIFF copy of a corpus also works.
_OTHER_SF_MAGICS = (b"fLaC", b"OggS", b"FORM")
_OTHER_NAMES = {b"fLaC": "FLAC", b"OggS": "OGG", b"FORM": "AIFF"}
# MATLAB classes that hold numbers (whosmat names them; logical/char/cell/struct do not hold a signal).
_MAT_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says (see :func:`audio_info`).

    Attributes:
        path: The file.
        format: ``"SPHERE"``, ``"RIFF"``, ``"MAT"``, ``"FLAC"``, ``"OGG"`` or ``"AIFF"``.
        sample_rate: Samples per second (for ``.mat`` files the assumed ``mat_sample_rate``).
        n_samples: Samples per channel.
        channels: Channel count (averaged to mono when read).
        variable: The signal variable of a ``.mat`` file, else None.
    """

    path: Path
    format: str
    sample_rate: int
    n_samples: int
    channels: int
    variable: str | None = None

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.sample_rate

    def samples_at(self, rate: int) -> int:
        """Samples once resampled to ``rate``, as :func:`read_audio` gives them (:func:`resample`'s length,
        ``ceil(n_samples * rate / sample_rate)``): a length known from the header alone."""
        if rate == self.sample_rate:
            return self.n_samples
        return -(-self.n_samples * int(rate) // self.sample_rate)


def _check_rate(path: Path, rate: float, what: str = "sample rate") -> int:
    """The header's sample rate as an int, or AudioReadError when no recording has that rate."""
    if isinstance(rate, bool) or not math.isfinite(float(rate)) or int(rate) != rate:
        raise AudioReadError(
            f"{path}: {what} {rate!r} Hz is not an integer; expected an audio sample rate in Hz"
        )
    rate = int(rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioReadError(
            f"{path}: {what} {rate} Hz cannot be resampled; expected an audio rate between {MIN_SAMPLE_RATE} "
            f"and {MAX_SAMPLE_RATE} Hz (a corrupt header, or not an audio file)"
        )
    return rate


def check_resample(orig_sr: int, new_sr: int, what: str = "audio") -> None:
    """Refuse a rate conversion the windowed-sinc resampler cannot do in bounded memory.

    The resampler works on the rate ratio reduced by the greatest common divisor: 19980 -> 16000 Hz is
    999 -> 800, 44100 -> 16000 is 441 -> 160; a ratio like 16001 -> 16000 (coprime) would need a
    16000 x 16015 filter bank (GBs). Such rates only come from corrupt headers or mistyped configs.

    Args:
        orig_sr: Source rate in Hz.
        new_sr: Target rate in Hz.
        what: What is being resampled, for the message (a file path, a config key).

    Raises:
        DataError: If either rate is not a positive integer or the reduced ratio is too large.
    """
    for name, rate in (("orig_sr", orig_sr), ("new_sr", new_sr)):
        if isinstance(rate, bool) or int(rate) != rate or rate <= 0:
            raise DataError(f"{name} must be a positive integer sample rate in Hz, got {rate!r} ({what})")
    g = math.gcd(int(orig_sr), int(new_sr))
    orig_r, new_r = int(orig_sr) // g, int(new_sr) // g
    width = math.ceil(6 * orig_r / (0.99 * min(orig_r, new_r)))
    if new_r * (orig_r + 2 * width) > _MAX_RESAMPLE_KERNEL:
        raise DataError(
            f"cannot resample {what} from {orig_sr} Hz to {new_sr} Hz: the rates reduce to {orig_r}:{new_r}, "
            "which needs a filter bank too large for memory; expected a common audio rate (8000, 11025, 16000, "
            "19980, 22050, 44100, 48000 Hz ...) - re-encode the file (e.g. `sox in.wav -r 16000 out.wav`)"
        )


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
        AudioReadError: If the file is missing, empty, of an unknown format, truncated, contains NaN/inf, has a
            sample rate no recording has or that cannot be resampled to ``target_sr``, or (``.mat``) holds no
            usable signal variable. The message names the file and what was expected.
    """
    import torch

    path = Path(path)
    kind = _sniff(path)
    if kind == "SPHERE":
        data, sr = _read_sphere(path)
    elif kind == "RIFF":
        data, sr = _read_riff(path)
    elif kind == "MAT":
        data, sr = _read_mat(path, _check_rate(path, mat_sample_rate, "the assumed .mat sample rate"))
    else:
        data, sr = _soundfile_read(path, "audio")
    sr = _check_rate(path, sr)

    wave = _to_mono(data)
    _check_samples(wave, path)
    tensor = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if target_sr is not None and int(target_sr) != sr:
        try:
            check_resample(sr, target_sr, str(path))
        except DataError as exc:
            raise AudioReadError(str(exc)) from None
        tensor = resample(tensor, sr, int(target_sr))
        sr = int(target_sr)
    return tensor, int(sr)


def _sniff(path: Path) -> str:
    """The container of ``path`` told by its first bytes: SPHERE, RIFF, MAT or FLAC/OGG/AIFF."""
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "missing"
        raise AudioReadError(f"cannot read audio {path}: {what}; expected an existing audio file")
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise AudioReadError(f"cannot read audio {path}: {exc.strerror or exc}") from exc
    if not head:
        raise AudioReadError(f"cannot read audio {path}: the file is empty (0 bytes); expected an audio file")
    if head.startswith(_SPHERE_MAGIC):
        return "SPHERE"
    if head[:4] in _RIFF_MAGICS:
        return "RIFF"
    if head.startswith(b"MATLAB") or path.suffix.lower() == ".mat":
        return "MAT"
    if head[:4] in _OTHER_SF_MAGICS:
        return _OTHER_NAMES[head[:4]]
    raise AudioReadError(
        f"cannot read audio {path}: unknown format (first bytes {head[:8]!r}); expected NIST SPHERE "
        "('NIST_1A'), RIFF WAVE ('RIFF'), a MATLAB v5 .mat file, FLAC, OGG or AIFF"
    )


def audio_info(path: str | os.PathLike[str], mat_sample_rate: int = NOISEX_SAMPLE_RATE) -> AudioInfo:
    """Read the header of an audio file: format, rate, length, channels; no samples are decoded.

    Runs the same integrity checks as :func:`read_audio` that need no samples: the format magic, a SPHERE
    header's ``sample_count`` against the file size (and no shorten compression), a RIFF ``data`` chunk's
    size against the file size, a MAT v5 file's data elements against its size and the presence of the
    signal variable, and a plausible sample rate. What it cannot see: NaN/inf samples (only a full read does).

    Args:
        path: Audio file.
        mat_sample_rate: Sample rate assumed for ``.mat`` files (NOISEX-92: 19980 Hz).

    Returns:
        The file's :class:`AudioInfo`.

    Raises:
        AudioReadError: If the file is missing, empty, of an unknown format, truncated, compressed in a way
            soundfile cannot decode, holds no samples or no signal variable, or has an implausible rate.
    """
    path = Path(path)
    kind = _sniff(path)
    if kind == "SPHERE":
        header = _sphere_checked(path)
        if isinstance(header.get("sample_count"), int) and isinstance(
            header.get("sample_rate"), (int, float)
        ):
            info = AudioInfo(
                path,
                "SPHERE",
                _check_rate(path, header["sample_rate"]),  # type: ignore[arg-type]
                int(header["sample_count"]),
                int(header.get("channel_count", 1)),
            )
        else:
            # A header without the count or rate fields (legal but rare): ask libsndfile.
            info = _soundfile_info(path, "SPHERE")
    elif kind == "RIFF":
        _riff_walk(path)
        info = _soundfile_info(path, "RIFF")
    elif kind == "MAT":
        info = _mat_info(path, _check_rate(path, mat_sample_rate, "the assumed .mat sample rate"))
    else:
        info = _soundfile_info(path, kind)
    if info.n_samples <= 0:
        raise AudioReadError(f"{path}: the file holds no samples; expected a nonempty recording")
    return info


def _soundfile_info(path: Path, fmt: str) -> AudioInfo:
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as exc:
        raise AudioReadError(f"cannot decode {fmt} file {path}: {exc}") from exc
    return AudioInfo(path, fmt, _check_rate(path, info.samplerate), int(info.frames), int(info.channels))


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


def _sphere_checked(path: Path) -> dict[str, int | float | str]:
    """The SPHERE header, after checking it is uncompressed and the file holds the samples it declares."""
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
    if "sample_rate" in header:
        _check_rate(path, header["sample_rate"])  # type: ignore[arg-type]
    return header


def _read_sphere(path: Path) -> tuple[np.ndarray, int]:
    _sphere_checked(path)
    return _soundfile_read(path, "NIST SPHERE")


def _riff_walk(path: Path) -> int | None:
    """Walk a RIFF file's chunks up to ``data``; return the ``fmt `` rate (None if no fmt chunk precedes data).

    Compares the ``data`` chunk's declared size with what the file really holds, and checks the rate.
    """
    size = path.stat().st_size
    rate: int | None = None
    with path.open("rb") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[8:12] != b"WAVE":
            raise AudioReadError(
                f"{path}: malformed RIFF file; expected 'RIFF....WAVE' in the first 12 bytes"
            )
        endian = ">" if riff[:4] == b"RIFX" else "<"
        pos = 12
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
            if cid == b"fmt ":
                body = f.read(min(csize, 16))
                if len(body) < 8:
                    raise AudioReadError(
                        f"{path}: truncated RIFF file: the 'fmt ' chunk is cut short; expected a complete WAVE file"
                    )
                (rate,) = struct.unpack(endian + "I", body[4:8])
                _check_rate(path, rate)
            if cid == b"data":
                # 0 and 0xFFFFFFFF mark streamed / RF64 files whose real size lives elsewhere.
                if csize not in (0, 0xFFFFFFFF) and pos + 8 + csize > size:
                    raise AudioReadError(
                        f"{path}: truncated RIFF file: the 'data' chunk declares {csize} bytes but only "
                        f"{size - pos - 8} bytes are present"
                    )
                return rate
            pos += 8 + csize + (csize & 1)


def _read_riff(path: Path) -> tuple[np.ndarray, int]:
    _riff_walk(path)
    return _soundfile_read(path, "RIFF WAVE")


def _soundfile_read(path: Path, what: str) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as exc:
        raise AudioReadError(f"cannot decode {what} file {path}: {exc}") from exc
    return data, int(sr)


def _check_mat_complete(path: Path) -> None:
    """Check that every top-level data element of a MAT v5 file lies within the file.

    scipy's ``whosmat`` reads only the variable headers and does not notice a file cut short; walking the
    element tags (8 bytes each, then a seek) does, for compressed and uncompressed files alike.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(128)
        if len(head) < 128 or not head.startswith(b"MATLAB"):
            return  # MAT v4 (no text header) or not MAT at all: scipy's own errors say it
        if head.startswith(b"MATLAB 7.3"):
            return  # HDF5 inside: refused with its own message when read
        endian = {b"IM": "<", b"MI": ">"}.get(head[126:128])
        if endian is None:
            raise AudioReadError(
                f"{path}: malformed MAT v5 header (no endian indicator); expected a MATLAB v5 file"
            )
        pos = 128
        while pos < size:
            tag = f.read(8)
            if len(tag) < 8:
                if not tag.strip(b"\x00"):
                    return  # zero padding at the end
                raise AudioReadError(
                    f"{path}: truncated MAT file: {size - pos} stray bytes after the last variable"
                )
            mdtype, nbytes = struct.unpack(endian + "II", tag)
            step = 8 if mdtype >> 16 else 8 + nbytes  # small data element format packs the data into the tag
            if pos + step > size:
                raise AudioReadError(
                    f"{path}: truncated MAT file: a data element at byte {pos} declares {nbytes} bytes but only "
                    f"{size - pos - 8} remain; expected a complete MAT v5 file"
                )
            pos += step
            f.seek(pos)


def mat_variables(path: str | os.PathLike[str]) -> list[tuple[str, tuple[int, ...], str]]:
    """The variables of a MAT v5 file as ``(name, shape, MATLAB class)``, from the headers alone.

    Also checks that the file is complete (every data element lies within the file), which scipy's
    ``whosmat`` alone does not notice.

    Raises:
        AudioReadError: If the file is missing, truncated, MAT v7.3 (HDF5) or not a readable MAT file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(
            f"cannot read {path}: {'a directory' if path.is_dir() else 'missing'}; expected a .mat file"
        )
    if path.stat().st_size == 0:
        raise AudioReadError(f"cannot read {path}: the file is empty (0 bytes); expected a MAT v5 file")
    return _mat_whos(path)


def _mat_whos(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    import scipy.io

    _check_mat_complete(path)
    try:
        return scipy.io.whosmat(str(path))
    except NotImplementedError as exc:
        raise AudioReadError(
            f"cannot read {path}: MAT v7.3 (HDF5) files are not supported; expected MAT v5 "
            "(re-save with `save(..., '-v7')` in MATLAB)"
        ) from exc
    except Exception as exc:  # scipy raises many types (ValueError, TypeError, MatReadError) on bad files
        raise AudioReadError(f"cannot read {path}: not a readable MAT v5 file ({exc})") from exc


def _mat_signal_key(path: Path, names: list[str]) -> str:
    """The NOISEX-92 signal variable among ``names``: the file's stem (any case), else the only variable."""
    stem = path.stem
    by_lower = {k.lower(): k for k in names}
    if stem in names:
        return stem
    if stem.lower() in by_lower:
        return by_lower[stem.lower()]
    if len(names) == 1:
        return names[0]
    raise AudioReadError(
        f"{path}: expected a variable named {stem!r} (NOISEX-92 style) or exactly one array variable; "
        f"found {sorted(names) or 'none'}"
    )


def _mat_info(path: Path, sample_rate: int) -> AudioInfo:
    whos = _mat_whos(path)
    shapes = {
        name: (tuple(int(n) for n in shape), cls) for name, shape, cls in whos if not name.startswith("__")
    }
    key = _mat_signal_key(path, list(shapes))
    shape, cls = shapes[key]
    if cls not in _MAT_NUMERIC:
        raise AudioReadError(f"{path}: variable {key!r} is not a numeric array (MATLAB class {cls!r})")
    dims = [n for n in shape if n != 1]
    if 0 in shape or not dims:
        raise AudioReadError(f"{path}: variable {key!r} holds no samples; expected a signal vector")
    if len(dims) > 2:
        raise AudioReadError(f"{path}: variable {key!r} has shape {shape}; expected a vector")
    # Time runs along the longer axis, as in _read_mat.
    return AudioInfo(path, "MAT", sample_rate, max(dims), min(dims) if len(dims) == 2 else 1, variable=key)


def _read_mat(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    import scipy.io

    _check_mat_complete(path)
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
    key = _mat_signal_key(path, list(arrays))
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

    Raises:
        DataError: If a rate is not a positive integer, or the pair cannot be resampled in bounded memory
            (see :func:`check_resample`).
    """
    import torch

    orig_sr, new_sr = (
        as_int(rate, name, minimum=1, error=DataError, hint="a sample rate in Hz")
        for name, rate in (("orig_sr", orig_sr), ("new_sr", new_sr))
    )
    if orig_sr == new_sr:
        return wave
    check_resample(orig_sr, new_sr, "a waveform")
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
    data = _mono_samples(wave, path, "write_wav")
    if subtype.upper().startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, int(sr), subtype=subtype, format="WAV")
    return path


def _mono_samples(wave: torch.Tensor | np.ndarray, path: Path, writer: str) -> np.ndarray:
    """The finite float32 samples of a 1-D waveform about to be written to ``path``, or one clear error."""
    data = _as_numpy(wave)
    if data.ndim != 1:
        raise DataError(f"{writer} expects a 1-D mono waveform, got shape {tuple(data.shape)} for {path}")
    if not np.isfinite(data).all():
        raise DataError(f"refusing to write {path}: the waveform contains NaN or infinite values")
    return data


def _as_numpy(wave: torch.Tensor | np.ndarray) -> np.ndarray:
    if hasattr(wave, "detach"):  # a torch tensor; checked by duck type so numpy callers never import torch
        wave = wave.detach().cpu().numpy()
    return np.asarray(wave, dtype=np.float32)


def write_sphere(
    path: str | os.PathLike[str],
    wave: torch.Tensor | np.ndarray,
    sr: int,
    utterance_id: str | None = None,
    database_id: str = "TIMIT",
) -> Path:
    """Write a mono waveform as an uncompressed NIST SPHERE file, as TIMIT distributes them.

    The header is the 1024-byte ``NIST_1A`` ASCII header of the LDC TIMIT files (``sample_count``,
    ``sample_rate``, 16-bit little-endian PCM, ``sample_min``/``sample_max``); samples are clipped to [-1, 1] and
    quantised to int16.

    Args:
        path: Output file; parent folders are created.
        wave: Mono waveform in [-1, 1].
        sr: Sample rate in Hz.
        utterance_id: The header's ``utterance_id`` (default: the file stem, lower case).
        database_id: The header's ``database_id``.

    Returns:
        The path written.

    Shape:
        - wave: ``(time,)``.
    """
    path = Path(path)
    data = _mono_samples(wave, path, "write_sphere")
    pcm = np.round(np.clip(data, -1.0, 1.0) * 32767.0).astype("<i2")
    uid = utterance_id if utterance_id is not None else path.stem.lower()
    fields = [
        f"database_id -s{len(database_id)} {database_id}",
        "database_version -s3 1.0",
        f"utterance_id -s{len(uid)} {uid}",
        "channel_count -i 1",
        f"sample_count -i {pcm.size}",
        f"sample_rate -i {int(sr)}",
        f"sample_min -i {int(pcm.min()) if pcm.size else 0}",
        f"sample_max -i {int(pcm.max()) if pcm.size else 0}",
        "sample_n_bytes -i 2",
        "sample_byte_format -s2 01",
        "sample_sig_bits -i 16",
        "end_head",
    ]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode("ascii")
    if len(header) > 1024:
        raise DataError(f"SPHERE header for {path} exceeds 1024 bytes; shorten utterance_id/database_id")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(header + b" " * (1024 - len(header)))
        f.write(pcm.tobytes())
    return path
