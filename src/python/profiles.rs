//! `_core.profiles()`: the meter profiles of [`crate::profile::PROFILES`] as dicts.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::profile::PROFILES;

/// Every meter profile as a dict: name, aliases, meter, operators, protocol,
/// framing, layout, security, baudrate, bytesize, parity, stopbits, connector,
/// tz, vectors (list of [vector id, how far it proves the profile]), simulator.
#[pyfunction]
pub fn profiles(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for p in PROFILES {
        let d = PyDict::new(py);
        d.set_item("name", p.name)?;
        d.set_item("aliases", p.aliases.to_vec())?;
        d.set_item("meter", p.meter)?;
        d.set_item("operators", p.operators)?;
        d.set_item(
            "protocol",
            match p.protocol {
                crate::Protocol::Dlms => "dlms",
                crate::Protocol::Dsmr => "dsmr",
                crate::Protocol::Mbus => "mbus",
            },
        )?;
        d.set_item("framing", p.framing.name())?;
        d.set_item("layout", p.layout.map(|l| l.name()))?;
        d.set_item("security", p.security.name())?;
        d.set_item("baudrate", p.serial.baudrate)?;
        d.set_item("bytesize", p.serial.data_bits)?;
        d.set_item("parity", p.serial.parity)?;
        d.set_item("stopbits", p.serial.stop_bits)?;
        d.set_item("connector", p.connector)?;
        d.set_item("tz", p.tz)?;
        d.set_item(
            "vectors",
            p.vectors
                .iter()
                .map(|(id, how)| (*id, *how))
                .collect::<Vec<_>>(),
        )?;
        d.set_item("simulator", p.simulator)?;
        list.append(d)?;
    }
    Ok(list)
}
