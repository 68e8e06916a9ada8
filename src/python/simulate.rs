//! The emit side for the simulator: `_core.encode_push` and `_core.METERS`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Deserialize;

use super::convert;
use crate::dlms::datetime::DateTime;
use crate::dlms::push::{ExtraValues, Meter, PushValues};

/// The values of one push as the simulator passes them (raw meter units).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PushArgs {
    long_invoke_id: u32,
    local_time: (u16, u8, u8, u8, u8, u8),
    utc_offset_minutes: i16,
    dst: bool,
    active_energy_plus: u32,
    active_energy_minus: u32,
    active_power_plus: u32,
    active_power_minus: u32,
    reactive_energy_plus: u32,
    reactive_energy_minus: u32,
    voltage_decivolt: [u16; 3],
    current_centiampere: [u16; 3],
    power_factor_milli: i16,
    meter_number: String,
    device_name: String,
    #[serde(default)]
    reactive_power_plus: u32,
    #[serde(default)]
    reactive_power_minus: u32,
    #[serde(default)]
    phase_angle: [u16; 3],
}

fn meter(name: &str) -> PyResult<Meter> {
    Meter::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Meter::ALL.iter().map(|m| m.name()).collect();
        PyValueError::new_err(format!(
            "unknown meter {name:?}; one of {}",
            names.join(", ")
        ))
    })
}

/// The wire bytes of one push of `meter` with `values`, encrypted with `key`;
/// `auth_key` (required for meters whose security control is 0x30) goes into
/// the GCM tag.
#[pyfunction]
#[pyo3(signature = (meter_name, values, *, key, system_title, frame_counter, auth_key = None))]
pub fn encode_push<'py>(
    py: Python<'py>,
    meter_name: &str,
    values: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
    system_title: &[u8],
    frame_counter: u32,
    auth_key: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let m = meter(meter_name)?;
    let auth_key = auth_key
        .filter(|k| !k.is_none())
        .map(|k| convert::key(k, "auth_key"))
        .transpose()?;
    if m.needs_auth_key() && auth_key.is_none() {
        return Err(PyValueError::new_err(format!(
            "meter {meter_name:?} authenticates its telegrams: auth_key is required"
        )));
    }
    let a: PushArgs = pythonize::depythonize(values)
        .map_err(|e| PyValueError::new_err(format!("push values: {e}")))?;
    let (y, mo, d, h, mi, s) = a.local_time;
    let time = DateTime::local((y, mo, d), (h, mi, s), a.utc_offset_minutes, a.dst);
    if !time.is_complete() {
        return Err(PyValueError::new_err(
            "push values: local_time is not a valid date-time",
        ));
    }
    let values = PushValues {
        long_invoke_id: a.long_invoke_id,
        time,
        active_energy_plus: a.active_energy_plus,
        active_energy_minus: a.active_energy_minus,
        active_power_plus: a.active_power_plus,
        active_power_minus: a.active_power_minus,
        reactive_energy_plus: a.reactive_energy_plus,
        reactive_energy_minus: a.reactive_energy_minus,
        voltage_decivolt: a.voltage_decivolt,
        current_centiampere: a.current_centiampere,
        power_factor_milli: a.power_factor_milli,
        meter_number: a.meter_number,
        device_name: a.device_name,
    };
    let extra = ExtraValues {
        reactive_power_plus: a.reactive_power_plus,
        reactive_power_minus: a.reactive_power_minus,
        phase_angle: a.phase_angle,
    };
    let title: [u8; 8] = system_title
        .try_into()
        .map_err(|_| PyValueError::new_err("system_title must be 8 bytes"))?;
    let key = convert::key(key, "key")?;
    Ok(PyBytes::new(
        py,
        &m.telegram_with(
            &values,
            &extra,
            &key,
            auth_key.as_ref(),
            &title,
            frame_counter,
        ),
    ))
}

/// A system title like `meter`'s own, ending in `serial`.
#[pyfunction]
pub fn system_title<'py>(
    py: Python<'py>,
    meter_name: &str,
    serial: u32,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &meter(meter_name)?.system_title(serial)))
}

/// The names of the meter profiles.
pub fn meter_names() -> Vec<&'static str> {
    Meter::ALL.iter().map(|m| m.name()).collect()
}
