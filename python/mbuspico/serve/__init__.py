"""``mbuspico serve``: the service that runs next to the meter, and what embeds it.

Reads the meter on a thread of its own and publishes each reading as the
systems it replaces did: MBusPico's JSON over HTTP and UDP, MQTT (MBusPico's,
EVN's and DSMR-reader's topics, Home Assistant discovery), CSV files, Graphite
and InfluxDB; with a status page, a settings page and an mDNS announcement.
Embed it in a script of your own::

    from mbuspico.serve import Service, load_config

    config = load_config(os.environ, "mbuspico.toml", {}, demo=False)
    service = Service(config)
    service.start()          # background thread; service.run() blocks instead
    ...
    service.stop()

The parts, one module each: :mod:`~mbuspico.serve.app` (wiring and life
cycle), :mod:`~mbuspico.serve.meter` (the reader thread and the latest
reading), :mod:`~mbuspico.serve.http` (routes, authentication, pages),
:mod:`~mbuspico.serve.udp`, :mod:`~mbuspico.serve.config` (environment, TOML
file, flags), :mod:`~mbuspico.serve.settings_page`,
:mod:`~mbuspico.serve.stats` (memory, CPU temperature),
:mod:`~mbuspico.serve.mdns`, and the sinks in :mod:`mbuspico.serve.sinks`.
"""

from .app import BurstFilter, Service, set_log_level
from .config import Config, ConfigError
from .config import load as load_config

__all__ = ["BurstFilter", "Config", "ConfigError", "Service", "load_config", "set_log_level"]
