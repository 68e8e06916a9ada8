"""mbuspico.to_pandas: readings of every protocol as a DataFrame (tests/data/SOURCES.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import mbuspico
from conftest import DATA, by_id
from mbuspico import frames
from mbuspico.simulate.dlms import EXPECTED_FIELDS, Simulator

pd = pytest.importorskip("pandas")

REAL = by_id("fkw9_kaifa_ma309m_real")
DEMO_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def real_frame() -> bytes:
    return (DATA / "dlms" / "netznoe_kaifa_ma309m_real.bin").read_bytes()


def dsmr_v5() -> str:
    vectors = json.loads((DATA / "dsmr" / "vectors.json").read_text(encoding="utf-8"))
    return next(v["text"] for v in vectors["vectors"] if v["id"] == "dsmr_parser/TELEGRAM_V5")


def cf_echo() -> str:
    return (DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text()


def test_real_kaifa_frame_values_units_and_index():
    reading = mbuspico.Decoder(REAL["key"]).decode(real_frame())
    df = mbuspico.to_pandas([reading])
    assert len(df) == 1
    assert df.index.name == "timestamp"
    assert str(df.index.tz) == "UTC"
    # The meter clock 2022-02-04 16:43:20 at UTC+01:00.
    assert df.index[0] == pd.Timestamp("2022-02-04T15:43:20Z")
    row = df.iloc[0]
    assert row["activePowerPlus"] == 1055
    assert row["activeEnergyPlus"] == 1340436
    assert row["voltageL1"] == 234.5
    assert row["currentL3"] == 0.92
    assert row["powerFactor"] == 0.968
    assert row["meterNumber"] == "181220002177"
    assert row["protocol"] == "dlms"
    assert row["1-0:1.8.0"] == 1340436
    assert row["1-0:32.7.0"] == 234.5
    assert row["0-0:1.0.0"] == "2022-02-04T16:43:20+01:00"
    # Netz NÖ sends no reactive energy: a NaN column, not missing.
    assert pd.isna(row["reactiveEnergyPlus"])
    assert df["activePowerPlus"].dtype == "int64"
    assert df["voltageL1"].dtype == "float64"
    units = df.attrs["units"]
    assert units["activePowerPlus"] == "W"
    assert units["activeEnergyPlus"] == "Wh"
    assert units["voltageL1"] == "V"
    assert units["currentL1"] == "A"
    assert units["1-0:1.8.0"] == "Wh"
    assert units["1-0:1.7.0"] == "W"
    assert units["1-0:13.7.0"] is None
    assert units["meterNumber"] is None
    assert set(units) == set(df.columns)
    assert df.attrs["skipped"] == 0
    assert df.attrs["no_timestamp"] == 0


def test_tz_converts_the_index():
    reading = mbuspico.Decoder(REAL["key"]).decode(real_frame())
    df = mbuspico.to_pandas([reading], tz="Europe/Vienna")
    assert str(df.index.tz) == "Europe/Vienna"
    assert df.index[0].isoformat() == "2022-02-04T16:43:20+01:00"


def test_errors_from_decode_many_are_skipped_and_counted():
    frame = real_frame()
    broken = frame[:100] + bytes([frame[100] ^ 1]) + frame[101:]  # M-Bus checksum fails
    decoder = mbuspico.Decoder(REAL["key"])
    items = decoder.decode_many([frame, broken, b"\x68\x00", frame])
    df = mbuspico.to_pandas(items)
    assert len(df) == 2
    assert df.attrs["skipped"] == 2
    assert list(df["activePowerPlus"]) == [1055, 1055]
    with pytest.raises(mbuspico.ChecksumError) as e:
        mbuspico.to_pandas(items, errors="raise")
    assert e.value.offset > 0


def test_non_readings_and_bad_arguments_are_typed_errors():
    with pytest.raises(TypeError, match="item 0 is a bytes, not a reading"):
        mbuspico.to_pandas([b"\x68"])
    with pytest.raises(TypeError, match=r"item 1 is not a reading: KeyError 'obis'"):
        mbuspico.to_pandas([mbuspico.Decoder().decode(cf_echo()), {"protocol": "dlms"}])
    with pytest.raises(TypeError, match=r"item 0 is not a reading: KeyError 'records'"):
        mbuspico.to_pandas([{"protocol": "mbus"}])
    with pytest.raises(ValueError, match='errors must be "skip" or "raise"'):
        mbuspico.to_pandas([], errors="return")  # type: ignore[arg-type]


def test_dsmr_telegram_obis_columns_keep_the_meter_units():
    reading = mbuspico.Decoder(protocol="dsmr").decode(dsmr_v5())
    df = mbuspico.to_pandas([reading], tz="Europe/Amsterdam")
    row = df.iloc[0]
    assert df.index[0].isoformat() == "2017-01-02T19:20:02+01:00"
    assert row["protocol"] == "dsmr"
    assert row["1-0:1.8.1"] == 4.426
    assert df.attrs["units"]["1-0:1.8.1"] == "kWh"
    assert row["1-0:1.7.0"] == 0.244
    assert df.attrs["units"]["1-0:1.7.0"] == "kW"
    assert row["0-1:24.2.1"] == 0.107
    assert df.attrs["units"]["0-1:24.2.1"] == "m3"
    # MBusPico's fields are in W and Wh whatever the meter sends.
    assert row["activeEnergyPlus"] == 6825
    assert row["activePowerPlus"] == 244
    assert row["meterNumber"] == "K8EG004046395507"


def test_mbus_records_are_columns_by_index_and_quantity():
    reading = mbuspico.Decoder().decode(cf_echo())
    df = mbuspico.to_pandas([reading])
    assert df.index.isna().all()
    assert df.attrs["no_timestamp"] == 1
    row = df.iloc[0]
    assert row["manufacturer"] == "ACW"
    assert row["medium"] == "Heat: Outlet"
    assert row["1:Energy"] == 9730000
    assert df.attrs["units"]["1:Energy"] == "Wh"
    assert row["2:Volume"] == 1638.0
    assert df.attrs["units"]["2:Volume"] == "m^3"
    assert row["5:Flow temperature"] == 22.0
    assert df.attrs["units"]["5:Flow temperature"] == "°C"
    assert row["8:Time point (date & time)"] == "2017-01-30T21:17:00"
    assert list(df.columns[:8]) == [
        "protocol",
        "id",
        "manufacturer",
        "version",
        "productName",
        "medium",
        "accessNumber",
        "status",
    ]


def test_mixed_protocols_share_one_frame():
    dlms = mbuspico.Decoder(REAL["key"]).decode(real_frame())
    mbus = mbuspico.Decoder().decode(cf_echo())
    dsmr = mbuspico.Decoder(protocol="dsmr").decode(dsmr_v5())
    df = mbuspico.to_pandas([dlms, mbus, dlms])
    assert list(df["protocol"]) == ["dlms", "mbus", "dlms"]
    assert list(df["activePowerPlus"].fillna(-1)) == [1055, -1, 1055]
    assert df["1:Energy"].iloc[1] == 9730000
    assert df["1:Energy"].isna().sum() == 2
    assert df["1-0:1.8.0"].iloc[2] == 1340436
    assert df.attrs["no_timestamp"] == 1
    # Columns in order of first appearance: the DLMS push's come first.
    assert list(df.columns[:2]) == ["protocol", "meterNumber"]
    assert df.columns[-1] == "12:Manufacturer specific"
    # 1-0:1.7.0 is in W in the push and in kW on P1: one column cannot hold both.
    with pytest.raises(ValueError, match=r"'1-0:1\.7\.0' has values in W and in kW"):
        mbuspico.to_pandas([dlms, dsmr])
    df = mbuspico.to_pandas([dlms, mbus, dsmr], columns=["activePowerPlus", "1-0:1.8.1"])
    assert list(df["activePowerPlus"].fillna(-1)) == [1055, -1, 244]
    assert list(df["1-0:1.8.1"].fillna(-1)) == [-1, -1, 4.426]
    assert df.index[2] == pd.Timestamp("2017-01-02T18:20:02Z")


def test_timestamps_without_offset_need_tz():
    vector = by_id("amsreader_gh501_1_lg_e450_burgenland")
    decoder = mbuspico.Decoder(vector["key"], auth_key=vector["auth_key"])
    reading = decoder.decode(vector["hex"])
    assert reading["timestamp"] == "2023-03-28T19:11:20"
    with pytest.raises(ValueError, match=r"without UTC offset .*pass tz="):
        mbuspico.to_pandas([reading])
    df = mbuspico.to_pandas([reading], tz="Europe/Vienna")
    # Vienna is on summer time (UTC+02:00) on 28 March 2023.
    assert df.index[0] == pd.Timestamp("2023-03-28T17:11:20Z")
    assert df["activePowerPlus"].iloc[0] == reading["activePowerPlus"]


def test_columns_selects_and_orders_and_fills_missing():
    reading = mbuspico.Decoder(REAL["key"]).decode(real_frame())
    df = mbuspico.to_pandas(
        [reading, reading], columns=["voltageL2", "activePowerPlus", "1-0:3.8.0"]
    )
    assert list(df.columns) == ["voltageL2", "activePowerPlus", "1-0:3.8.0"]
    assert list(df["voltageL2"]) == [233.4, 233.4]
    assert df["1-0:3.8.0"].isna().all()
    assert df.attrs["units"] == {"voltageL2": "V", "activePowerPlus": "W", "1-0:3.8.0": None}


@pytest.mark.parametrize(
    "columns",
    [
        ["activePowerPlus", "voltageL1", "meterNumber", "powerFactor"],  # MBusPico fields only
        ["activeEnergyPlus"],
        ["activePowerPlus", "1-0:32.7.0", "1:Energy"],
    ],
)
def test_columns_give_the_same_values_as_selecting_afterwards(columns):
    sim = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1, seed=5)
    readings = mbuspico.Decoder(DEMO_KEY).decode_many(
        [t.telegram for _, t in zip(range(50), sim.telegrams())]
    )
    readings.insert(20, mbuspico.Decoder().decode(cf_echo()))
    everything = mbuspico.to_pandas(readings)
    chosen = mbuspico.to_pandas(readings, columns=columns)
    pd.testing.assert_frame_equal(chosen, everything[columns])
    assert chosen.attrs["units"] == {c: everything.attrs["units"][c] for c in columns}
    assert (
        chosen["activePowerPlus" if "activePowerPlus" in columns else columns[0]].notna().sum()
        == 50
    )


def test_empty_input():
    df = mbuspico.to_pandas([], columns=["activePowerPlus"])
    assert len(df) == 0
    assert list(df.columns) == ["activePowerPlus"]
    assert str(df.index.tz) == "UTC"
    assert df.attrs["skipped"] == 0


def test_one_column_in_two_units_is_refused():
    reading = mbuspico.Decoder(REAL["key"]).decode(real_frame())
    other = dict(reading)
    other["obis"] = {**reading["obis"], "1-0:1.8.0": {"value": 1340.436, "unit": "kWh"}}
    with pytest.raises(ValueError, match=r"'1-0:1\.8\.0' has values in Wh and in kWh"):
        mbuspico.to_pandas([reading, other])


def test_layouts_without_a_value_keep_the_column_numeric():
    """A layout lacking a code (its MBusPico field None): float64 with NaN, not object."""
    reading = mbuspico.Decoder(REAL["key"]).decode(real_frame())
    other = dict(reading)
    other["obis"] = {k: v for k, v in reading["obis"].items() if k != "1-0:2.7.0"}
    other["activePowerMinus"] = None
    other["meterNumber"] = None
    df = mbuspico.to_pandas([reading, other, reading])
    assert df["activePowerMinus"].dtype == "float64"
    assert list(df["activePowerMinus"].fillna(-1)) == [0, -1, 0]
    assert df["1-0:2.7.0"].dtype == "float64"
    assert df["meterNumber"].dtype == pd.Series(["text"]).dtype  # pandas' text dtype
    assert list(df["meterNumber"].fillna("-")) == ["181220002177", "-", "181220002177"]
    assert df["activePowerPlus"].dtype == "int64"


def test_simulated_readings_across_chunks_and_the_dst_switch(monkeypatch):
    """Every row equals what the simulator encoded, across chunk boundaries and DST."""
    vienna = ZoneInfo("Europe/Vienna")
    start = datetime(2026, 3, 29, 1, 59, 0, tzinfo=vienna)  # summer time begins at 02:00
    sim = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1, seed=7, start=start)
    telegrams = [t for _, t in zip(range(300), sim.telegrams())]
    readings = mbuspico.Decoder(DEMO_KEY).decode_iter(t.telegram for t in telegrams)
    monkeypatch.setattr(frames, "_CHUNK", 64)  # five chunks, the last one short
    df = mbuspico.to_pandas(readings)
    assert len(df) == 300
    first = datetime(2026, 3, 29, 0, 59, 0, tzinfo=timezone.utc)
    assert list(df.index) == [first + timedelta(seconds=i) for i in range(300)]
    assert df.index[60].tz_convert(vienna).isoformat() == "2026-03-29T03:00:00+02:00"
    for (_, row), telegram in zip(df.iterrows(), telegrams):
        expected = telegram.expected
        assert expected is not None
        for field in EXPECTED_FIELDS:
            if field == "timestamp":
                assert row.name == datetime.fromisoformat(expected[field])
            elif expected[field] is None:
                assert pd.isna(row[field])
            else:
                assert row[field] == expected[field], field


def test_missing_pandas_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install mbuspico\[pandas\]"):
        mbuspico.to_pandas([])


def test_import_mbuspico_loads_no_pandas():
    code = (
        "import sys, mbuspico; f = mbuspico.to_pandas; "
        "print(sorted(m for m in ('pandas', 'numpy', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
