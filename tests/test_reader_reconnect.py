"""``SerialReader(reconnect=False)``: once the port is lost, every read raises until closed.

Before issue 19 the first read after the loss raised and the second silently
reopened the port (by its path: possibly another device by now). A lost port
is final without ``reconnect=True``: each later ``read()`` and each ``next()``
raises :class:`mbuspico.SerialPortError` naming the port and that it was lost;
``close()`` ends that (reads then raise ``ValueError``, as for any closed reader).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mbuspico import SerialPortError, SerialReader
from mbuspico.simulate.dlms import Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def test_a_lost_port_stays_lost_until_closed(tmp_path: Path) -> None:
    link = tmp_path / "meter"
    first = Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link)
    first.open()
    reader = SerialReader(str(link), key=KEY)  # reconnect=False, the default
    try:
        first.start()
        assert reader.read(timeout=5) is not None
        first.close()  # the adapter unplugged
        with pytest.raises(SerialPortError, match=f"serial port {link} lost") as info:
            reader.read(timeout=5)
        assert isinstance(info.value, OSError)
        assert reader.connected is False
        # Another device appears at the same path: the reader must not take it.
        with Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link) as second:
            second.start()
            for _ in range(3):
                with pytest.raises(SerialPortError, match=f"serial port {link} was lost"):
                    reader.read(timeout=1)
            with pytest.raises(SerialPortError, match="reconnect=False"):
                next(reader)
            with pytest.raises(SerialPortError, match="was lost"):
                reader.read()  # no timeout: raises at once, does not wait
            assert reader.connected is False
            assert reader.stats["reconnects"] == 0
    finally:
        reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(timeout=1)


def test_iterating_a_lost_port_raises_every_time() -> None:
    sim = Simulator("kaifa-ma309m", key=KEY, interval=0.05)
    port = sim.open()
    with SerialReader(port, key=KEY, timeout=5) as reader:
        sim.start()
        assert next(reader) is not None
        sim.close()
        errors = []
        for _ in range(3):
            with pytest.raises(SerialPortError) as info:
                next(reader)
            errors.append(str(info.value))
        assert all(port in e for e in errors)
        assert "lost" in errors[0]
        assert all("was lost" in e for e in errors[1:])


def test_with_reconnect_a_lost_port_is_reopened(tmp_path: Path) -> None:
    link = tmp_path / "meter"
    first = Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link)
    first.open()
    with SerialReader(str(link), key=KEY, reconnect=True) as reader:
        first.start()
        assert reader.read(timeout=5) is not None
        first.close()
        with Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link) as second:
            second.start()
            assert reader.read(timeout=10) is not None
        assert reader.stats["reconnects"] == 1
