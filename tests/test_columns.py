"""to_pandas(telegrams, decoder=): the columnar fast path equals the dict path.

Real DLMS pushes (tests/data/dlms/vectors.json), real P1 telegrams
(tests/data/dsmr/vectors.json), the simulated hour in examples/data and wired
M-Bus (tests/data/SOURCES.md); ``_core.decode_columns`` directly; garbage.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mbuspico
from conftest import DATA, VECTORS, by_id
from mbuspico import _core, frames

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

REAL = by_id("fkw9_kaifa_ma309m_real")
DEMO_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
HOUR = Path(__file__).parent.parent / "examples" / "data" / "kaifa_ma309m_1h.bin"
DLMS_KEYED = [v for v in VECTORS if v.get("key")]
DSMR = [
    v
    for v in json.loads((DATA / "dsmr" / "vectors.json").read_text(encoding="utf-8"))["vectors"]
    if v["kind"] == "telegram" and "text" in v
]


def real_frame() -> bytes:
    return (DATA / "dlms" / "netznoe_kaifa_ma309m_real.bin").read_bytes()


def cf_echo() -> str:
    return (DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text()


def dict_path(items: list[Any], decoder: mbuspico.Decoder, **kw: Any) -> Any:
    return mbuspico.to_pandas(decoder.decode_iter(items), **kw)


def assert_same(items: list[Any], decoder: mbuspico.Decoder, **kw: Any) -> Any:
    """Both paths give the same frame (values, dtypes, index, attrs), or the same error."""
    try:
        expected = dict_path(items, decoder, **kw)
    except (ValueError, TypeError) as e:
        with pytest.raises(type(e)) as raised:
            mbuspico.to_pandas(items, decoder=decoder, **kw)
        assert str(raised.value) == str(e)
        return None
    fast = mbuspico.to_pandas(items, decoder=decoder, **kw)
    pd.testing.assert_frame_equal(fast, expected)
    assert fast.attrs == expected.attrs
    return fast


def vector_decoder(v: dict[str, Any]) -> mbuspico.Decoder:
    return mbuspico.Decoder(v["key"], auth_key=v.get("auth_key"))


@pytest.mark.parametrize("vector", DLMS_KEYED, ids=[v["id"] for v in DLMS_KEYED])
def test_real_dlms_vectors_equal_the_dict_path(vector):
    decoder = vector_decoder(vector)
    items = [vector["hex"], bytes.fromhex(vector["hex"]), vector["hex"]]
    fast = assert_same(items, decoder, tz="Europe/Vienna")
    assert fast is not None
    assert fast.attrs["skipped"] in (0, 3)  # all three decode, or none


def test_real_dlms_vectors_decode_with_their_values():
    decoded = 0
    for vector in DLMS_KEYED:
        df = mbuspico.to_pandas([vector["hex"]], decoder=vector_decoder(vector), tz="UTC")
        if len(df):
            decoded += 1
            reading = vector_decoder(vector).decode(vector["hex"])
            for field in ("activePowerPlus", "activeEnergyPlus", "voltageL1", "meterNumber"):
                if reading[field] is None:
                    assert pd.isna(df[field].iloc[0])
                else:
                    assert df[field].iloc[0] == reading[field]
    assert decoded >= 12  # several meters and operators: Netz NÖ, KSM-West, Wiener Netze, ...


def test_real_kaifa_frame_columns_units_and_dtypes():
    df = mbuspico.to_pandas([real_frame()], decoder=mbuspico.Decoder(REAL["key"]))
    assert df.index[0] == pd.Timestamp("2022-02-04T15:43:20Z")
    row = df.iloc[0]
    assert row["activePowerPlus"] == 1055
    assert row["activeEnergyPlus"] == 1340436
    assert row["voltageL1"] == 234.5
    assert row["currentL3"] == 0.92
    assert row["powerFactor"] == 0.968
    assert row["meterNumber"] == "181220002177"
    assert row["0-0:1.0.0"] == "2022-02-04T16:43:20+01:00"
    assert pd.isna(row["reactiveEnergyPlus"])
    assert df["activePowerPlus"].dtype == "int64"
    assert df["frameCounter"].dtype == "int64"
    assert df["voltageL1"].dtype == "float64"
    assert df.attrs["units"]["1-0:1.8.0"] == "Wh"
    assert df.attrs["units"]["lxTimestamp"] == "s"
    assert list(df.columns[:3]) == ["protocol", "meterNumber", "lxTimestamp"]


def test_simulated_hour_equals_the_dict_path():
    decoder = mbuspico.Decoder(DEMO_KEY)
    expected = dict_path(list(mbuspico.read_capture(HOUR)), decoder, tz="Europe/Vienna")
    fast = mbuspico.to_pandas(mbuspico.read_capture(HOUR), decoder=decoder, tz="Europe/Vienna")
    pd.testing.assert_frame_equal(fast, expected)
    assert fast.attrs == expected.attrs
    assert len(fast) == 720
    assert fast.index.is_monotonic_increasing
    assert fast["activePowerPlus"].iloc[0] == 850


def test_simulated_hour_across_batches_and_with_columns(monkeypatch):
    telegrams = list(mbuspico.read_capture(HOUR))
    decoder = mbuspico.Decoder(DEMO_KEY)
    monkeypatch.setattr(frames, "_CHUNK", 100)  # eight batches, the last one short
    assert_same(telegrams, decoder)
    assert_same(telegrams, decoder, columns=["voltageL2", "activePowerPlus", "1-0:3.8.0"])
    assert_same(telegrams, decoder, columns=["0-0:1.0.0", "systemTitle", "nothing"])
    assert_same(telegrams[:0], decoder, columns=["activePowerPlus"])


def _held(array: Any) -> int:
    """Bytes of the memory a column's numbers keep alive (a view keeps its base)."""
    return int((array.base if array.base is not None else array).nbytes)


@pytest.mark.parametrize("garbage", [0, 30_000], ids=["clean", "garbage-first"])
def test_capture_columns_are_made_once_from_the_file_size(monkeypatch, tmp_path, garbage):
    """A capture file's number columns are sized from its size, not held twice or grown much.

    With garbage first the early estimate is low and the columns grow; either
    way the frame equals the dict path's and keeps little unused room.
    """
    monkeypatch.setattr(frames, "_CHUNK", 100)  # a batch a read of the file: four
    noise = np.random.default_rng(7).integers(0, 256, garbage, dtype=np.uint8).tobytes()
    path = tmp_path / "hour.bin"
    path.write_bytes(noise.replace(b"\x68", b"\x00") + HOUR.read_bytes())
    decoder = mbuspico.Decoder(DEMO_KEY)
    expected = dict_path(list(mbuspico.read_capture(path)), decoder, tz="Europe/Vienna")
    capture = mbuspico.read_capture(path)
    fast = mbuspico.to_pandas(capture, decoder=decoder, tz="Europe/Vienna")
    pd.testing.assert_frame_equal(fast, expected)
    assert capture.bytes_read == path.stat().st_size
    assert len(fast) == 720
    assert fast["activePowerPlus"].iloc[0] == 850  # the simulated meter's first reading
    for name in ("activePowerPlus", "voltageL1", "1-0:1.8.0"):
        values = fast[name].to_numpy()
        assert _held(values) <= values.nbytes * 17 // 16, name
    # Text columns hold the batches' arrow arrays (pandas 3): no concatenated copy.
    held = getattr(fast["0-0:1.0.0"].array, "_pa_array", None)
    assert held is None or held.num_chunks >= 4
    assert fast["0-0:1.0.0"].iloc[-1] == expected["0-0:1.0.0"].iloc[-1]


def test_number_columns_that_change_kind_between_batches(monkeypatch):
    """An int column that later misses rows or gets fractions, or text after numbers."""
    monkeypatch.setattr(frames, "_CHUNK", 2)
    texts = [v["text"] for v in DSMR]
    decoder = mbuspico.Decoder(protocol="dsmr")
    units: dict[str, set[Any]] = {}
    for reading in decoder.decode_iter(texts):
        if not isinstance(reading, Exception):  # a vector with a wrong CRC stays one
            for code, value in reading["obis"].items():
                units.setdefault(code, set()).add(value.get("unit"))
    names = [code for code, seen in units.items() if len(seen - {None}) <= 1]
    fast = assert_same(texts + texts[:5], decoder, tz="Europe/Amsterdam", columns=names)
    assert fast is not None
    kinds = {str(fast[c].dtype) for c in fast.columns}
    assert {"float64", "str", "object"} <= kinds  # numbers, text, and both in one column


def test_text_columns_without_pyarrow_text(monkeypatch):
    """pandas 2 (object text columns): the texts go to pandas as lists, like the dict path's."""
    monkeypatch.setattr(frames, "_CHUNK", 100)
    telegrams = list(mbuspico.read_capture(HOUR))[:250]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas 3: the option is deprecated
            text_option = pd.option_context("future.infer_string", False)
            text_option.__enter__()
        try:
            fast = assert_same(telegrams, mbuspico.Decoder(DEMO_KEY))
            mixed = [real_frame(), cf_echo(), real_frame()]
            assert_same(mixed, mbuspico.Decoder(REAL["key"]))
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text_option.__exit__(None, None, None)
    except (KeyError, pd.errors.OptionError):  # pragma: no cover - pandas 2: the default
        fast = assert_same(telegrams, mbuspico.Decoder(DEMO_KEY))
    assert fast is not None
    assert fast["meterNumber"].dtype == object
    assert set(fast["meterNumber"]) == {"181220002177"}


@pytest.mark.parametrize("vector", DSMR, ids=[v["id"] for v in DSMR])
def test_real_dsmr_vectors_equal_the_dict_path(vector):
    decoder = mbuspico.Decoder(protocol="dsmr")
    fast = assert_same([vector["text"], vector["text"].encode()], decoder, tz="Europe/Amsterdam")
    assert fast is not None


def test_dsmr_values_and_one_frame_of_many_meters():
    decoder = mbuspico.Decoder(protocol="dsmr")
    v5 = next(v for v in DSMR if v["id"] == "dsmr_parser/TELEGRAM_V5")
    df = mbuspico.to_pandas([v5["text"]], decoder=decoder)
    assert df.index[0] == pd.Timestamp("2017-01-02T18:20:02Z")
    assert df["1-0:1.8.1"].iloc[0] == 4.426
    assert df.attrs["units"]["1-0:1.8.1"] == "kWh"
    assert df["activeEnergyPlus"].iloc[0] == 6825
    assert df["meterNumber"].iloc[0] == "K8EG004046395507"
    # Every P1 vector in one frame: the same columns, values and units either way.
    texts = [v["text"] for v in DSMR]
    chosen = ["activePowerPlus", "activeEnergyPlus", "voltageL1", "meterNumber", "1-0:32.7.0"]
    fast = assert_same(texts, decoder, columns=chosen)
    assert fast is not None
    assert fast["activePowerPlus"].notna().sum() > 30


def test_many_meters_across_batches(monkeypatch):
    """Columns that come and go between batches, ints meeting floats, text meeting none."""
    monkeypatch.setattr(frames, "_CHUNK", 3)
    texts = [v["text"] for v in DSMR]
    chosen = ["meterNumber", "activePowerPlus", "activeEnergyPlus", "1-0:32.7.0"]
    chosen += ["0-0:96.14.0", "0-0:96.13.0", "0-1:24.1.0", "systemTitle", "lxTimestamp"]
    fast = assert_same(texts, mbuspico.Decoder(protocol="dsmr"), columns=chosen)
    assert fast is not None
    assert fast["0-0:96.14.0"].notna().sum() > 10  # the tariff indicator: text
    mixed = [real_frame(), cf_echo(), b"\x68", real_frame(), cf_echo(), cf_echo(), real_frame()]
    assert_same(mixed, mbuspico.Decoder(REAL["key"]))


def test_bad_telegrams_are_skipped_and_counted_alike():
    frame = real_frame()
    broken = frame[:100] + bytes([frame[100] ^ 1]) + frame[101:]  # M-Bus checksum fails
    items: list[Any] = [frame, broken, b"\x68\x00", b"", b"garbage", frame.hex(), "zz", 5, None]
    items += [frame[:150], frame]
    decoder = mbuspico.Decoder(REAL["key"])
    fast = assert_same(items, decoder)
    assert fast is not None
    assert len(fast) == 3
    assert fast.attrs["skipped"] == 8
    assert list(fast["activePowerPlus"]) == [1055, 1055, 1055]
    with pytest.raises(mbuspico.ChecksumError) as raised:
        mbuspico.to_pandas(items, decoder=decoder, errors="raise")
    with pytest.raises(mbuspico.ChecksumError) as expected:
        dict_path(items, decoder, errors="raise")
    assert raised.value.offset == expected.value.offset > 0
    with pytest.raises(TypeError, match="expected bytes"):
        mbuspico.to_pandas([frame, 5], decoder=decoder, errors="raise")


def test_wired_mbus_rows_take_the_dict_path():
    decoder = mbuspico.Decoder(REAL["key"])
    items = [real_frame(), cf_echo(), real_frame(), cf_echo()]
    fast = assert_same(items, decoder)
    assert fast is not None
    assert list(fast["protocol"]) == ["dlms", "mbus", "dlms", "mbus"]
    assert fast["1:Energy"].iloc[1] == 9730000
    assert fast.attrs["units"]["1:Energy"] == "Wh"
    assert fast.attrs["no_timestamp"] == 2
    assert fast.columns[-1] == "12:Manufacturer specific"
    assert_same([cf_echo(), real_frame()], decoder)
    assert_same([cf_echo()], decoder, columns=["1:Energy", "activePowerPlus"])


def test_one_column_in_two_units_is_refused_alike():
    dlms = real_frame()
    v5 = next(v for v in DSMR if v["id"] == "dsmr_parser/TELEGRAM_V5")
    decoder = mbuspico.Decoder(REAL["key"])
    with pytest.raises(ValueError, match=r"'1-0:1\.7\.0' has values in W and in kW"):
        mbuspico.to_pandas([dlms, v5["text"]], decoder=decoder)
    assert_same([dlms, v5["text"]], decoder)
    assert_same([dlms, v5["text"]], decoder, columns=["activePowerPlus", "1-0:1.8.1"])


def test_timestamps_without_offset_need_tz_alike():
    vector = by_id("amsreader_gh501_1_lg_e450_burgenland")
    decoder = vector_decoder(vector)
    with pytest.raises(ValueError, match=r"reading 0 has .* without UTC offset \('2023-03-28T19"):
        mbuspico.to_pandas([b"x", vector["hex"], vector["hex"]], decoder=decoder)
    assert_same([vector["hex"]], decoder)
    df = assert_same([vector["hex"]], decoder, tz="Europe/Vienna")
    assert df is not None
    # Vienna is on summer time (UTC+02:00) on 28 March 2023.
    assert df.index[0] == pd.Timestamp("2023-03-28T17:11:20Z")


def push(local_time: tuple[int, ...], power: int) -> bytes:
    """A Kaifa MA309M push from mbuspico's encoder (as the simulator sends it)."""
    values = {
        "longInvokeId": 1,
        "localTime": local_time,
        "utcOffsetMinutes": 60,
        "dst": False,
        "activeEnergyPlus": 1000,
        "activeEnergyMinus": 20,
        "activePowerPlus": power,
        "activePowerMinus": 0,
        "reactiveEnergyPlus": 0,
        "reactiveEnergyMinus": 0,
        "voltageDecivolt": [2301, 2302, 2303],
        "currentCentiampere": [101, 102, 103],
        "powerFactorMilli": 900,
        "meterNumber": "181220002177",
        "deviceName": "KFM1200200002177",
    }
    title = _core.system_title("kaifa-ma309m", 2177)
    return _core.encode_push(
        "kaifa-ma309m", values, key=DEMO_KEY, system_title=title, frame_counter=power
    )


def test_a_clock_that_is_no_date_is_nat_alike():
    # DLMS checks the fields' ranges only: 31 February passes the decoder.
    items = [push((2026, 2, 28, 12, 0, 0), 5), push((2026, 2, 31, 12, 0, 0), 6)]
    decoder = mbuspico.Decoder(DEMO_KEY)
    assert decoder.decode(items[1])["timestamp"] == "2026-02-31T12:00:00+01:00"
    df = assert_same(items, decoder)
    assert df is not None
    assert df.index[0] == pd.Timestamp("2026-02-28T11:00:00Z")
    assert pd.isna(df.index[1])
    assert list(df["activePowerPlus"]) == [5, 6]
    assert df.attrs["no_timestamp"] == 1
    assert df["voltageL3"].iloc[1] == 230.3


def test_decode_columns_returns_typed_columns():
    decoder = mbuspico.Decoder(REAL["key"])
    out = _core.decode_columns(decoder, [real_frame(), b"\x68", real_frame()])
    assert out["rows"] == 2
    assert out["skipped"] == 1
    assert out["no_timestamp"] == 0
    assert out["mbus"] == []
    stamps = np.frombuffer(out["timestamp"], "<i8")
    assert list(stamps) == [1_643_989_400_000_000] * 2  # 2022-02-04T15:43:20Z in µs
    columns = {c[0]: c for c in out["columns"]}
    _, unit, first, kind, data, other = columns["activePowerPlus"]
    assert (unit, first, kind, other) == ("W", 0, "int64", None)
    assert list(np.frombuffer(data, "<i8")) == [1055, 1055]
    assert columns["voltageL1"][3] == "float64"
    assert list(np.frombuffer(columns["voltageL1"][4], "<f8")) == [234.5, 234.5]
    texts, codes = columns["meterNumber"][4]
    assert texts == ["181220002177"]  # one str for both rows
    assert list(np.frombuffer(codes, "<i8")) == [0, 0]
    assert columns["reactiveEnergyPlus"][3:5] == ("empty", None)
    only = _core.decode_columns(decoder, [real_frame()], columns=["voltageL2", "1-0:1.8.0"])
    assert [c[0] for c in only["columns"]] == ["voltageL2", "1-0:1.8.0"]
    with pytest.raises(mbuspico.DecodeError) as raised:
        _core.decode_columns(decoder, [real_frame(), b"\x68\x04\x04\x68"], errors="raise")
    assert raised.value.offset >= 0
    with pytest.raises(ValueError, match='errors must be "skip" or "raise"'):
        _core.decode_columns(decoder, [], errors="return")


def test_naive_clock_rows_are_returned_apart():
    vector = by_id("amsreader_gh501_1_lg_e450_burgenland")
    out = _core.decode_columns(vector_decoder(vector), [vector["hex"]])
    assert out["naive_first"] == "2023-03-28T19:11:20"
    assert list(np.frombuffer(out["timestamp"], "<i8")) == [np.iinfo(np.int64).min]
    assert list(np.frombuffer(out["naive_rows"], "<i8")) == [0]
    local = np.frombuffer(out["naive_local"], "<i8").view("M8[us]")
    assert str(local[0]) == "2023-03-28T19:11:20.000000"


def test_progress_bar_runs_with_the_fast_path(tmp_path, capsys):
    pytest.importorskip("tqdm")
    path = tmp_path / "meter.bin"
    path.write_bytes((b"\x00\xff" + real_frame()) * 50)  # 14,200 bytes
    capture = mbuspico.read_capture(path, progress=True, chunk_size=1000)
    df = mbuspico.to_pandas(capture, decoder=mbuspico.Decoder(REAL["key"]))
    assert len(df) == 50
    assert capture.stats["bytes_skipped"] == 100
    assert "14.2k/14.2k" in capsys.readouterr().err  # the bar ended at the file size


def test_errors_close_the_telegram_source():
    closed = []

    def telegrams():
        try:
            yield real_frame()
            yield b"\x68\x00"
            yield real_frame()
        finally:
            closed.append(True)

    with pytest.raises(mbuspico.FrameError):
        mbuspico.to_pandas(telegrams(), decoder=mbuspico.Decoder(REAL["key"]), errors="raise")
    assert closed == [True]  # a Capture's file and progress bar are closed


def test_bad_arguments():
    decoder = mbuspico.Decoder(REAL["key"])
    with pytest.raises(TypeError, match="iterable of telegrams, not one bytes"):
        mbuspico.to_pandas(real_frame(), decoder=decoder)
    with pytest.raises(ValueError, match='errors must be "skip" or "raise"'):
        mbuspico.to_pandas([], decoder=decoder, errors="return")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_arbitrary_bytes_never_crash(items):
    decoder = mbuspico.Decoder(REAL["key"])
    df = mbuspico.to_pandas(items, decoder=decoder, tz="UTC")
    assert len(df) + df.attrs["skipped"] == len(items)
    try:
        mbuspico.to_pandas(items, decoder=decoder, errors="raise", tz="UTC")
    except mbuspico.DecodeError as e:
        assert e.offset >= 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 281), st.integers(1, 255)), min_size=1, max_size=4))
def test_corrupted_real_frames_equal_the_dict_path(flips):
    """Bytes flipped in the ciphertext (no GCM tag on Netz NÖ): odd A-XDR data."""
    frame = bytearray(real_frame())
    for at, mask in flips:
        frame[at] ^= mask
    items = [bytes(frame), real_frame()]
    decoder = mbuspico.Decoder(REAL["key"], verify_checksum=False)
    fast = assert_same(items, decoder, tz="UTC")
    if fast is not None:
        assert len(fast) + fast.attrs["skipped"] == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from("0123456789.()*:-ABW\r\n")),
        min_size=1,
        max_size=6,
    )
)
def test_corrupted_p1_telegrams_equal_the_dict_path(edits):
    """Characters of real P1 telegrams replaced (CRC not checked): odd values, same frame."""
    v5 = next(v for v in DSMR if v["id"] == "dsmr_parser/TELEGRAM_V5")["text"]
    text = list(v5)
    for at, char in edits:
        text[at % len(text)] = char
    decoder = mbuspico.Decoder(protocol="dsmr", verify_crc=False)
    fast = assert_same(["".join(text), v5], decoder, tz="UTC")
    if fast is not None:
        assert len(fast) + fast.attrs["skipped"] == 2
