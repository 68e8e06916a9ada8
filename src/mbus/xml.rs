//! libmbus-compatible XML of decoded telegrams.
//!
//! The output of libmbus's `mbus_frame_xml` (non-normalized: libmbus's unit
//! descriptions and raw values) and `mbus_frame_xml_normalized` (quantity, base
//! unit and scaled value), so tools built on `mbus-serial-request-data` keep
//! working. Layout: 4- and 8-space indentation, a blank line after each block,
//! `%f` numbers. The XML declaration says ISO-8859-1, as libmbus's does, but the
//! text is UTF-8 (libmbus writes `°` as UTF-8 too). Differences from libmbus on
//! its own test corpus are listed in `tests/data/libmbus/KNOWN_DIFFERENCES.md`.

use super::data::{Application, Function, Record};
use super::record_value::{self, RecordValue};
use super::vif;

/// Escapes `& < > "` and turns control characters into spaces, as libmbus does.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn element(out: &mut String, indent: &str, name: &str, value: &str) {
    out.push_str(indent);
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(value));
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

const I1: &str = "    ";
const I2: &str = "        ";

fn function_text(r: &Record<'_>) -> &'static str {
    match r.function() {
        Function::Instantaneous => "Instantaneous value",
        Function::Maximum => "Maximum value",
        Function::Minimum => "Minimum value",
        Function::Error => "Value during error state",
        Function::ManufacturerSpecific => "Manufacturer specific",
        Function::MoreRecordsFollow => "More records follow",
    }
}

fn open_record(out: &mut String, id: usize, frame: Option<usize>) {
    out.push_str(&format!("{I1}<DataRecord id=\"{id}\""));
    if let Some(f) = frame {
        out.push_str(&format!(" frame=\"{f}\""));
    }
    out.push_str(">\n");
}

fn record(out: &mut String, id: usize, frame: Option<usize>, r: &Record<'_>, normalized: bool) {
    let value = record_value::decode(r);
    let Some(vib) = &r.vib else {
        // Manufacturer-specific data: the rest of the telegram as hex.
        open_record(out, id, frame);
        element(out, I2, "Function", function_text(r));
        if normalized {
            element(out, I2, "StorageNumber", "0");
            element(out, I2, "Unit", "");
            element(out, I2, "Quantity", "");
        }
        element(out, I2, "Value", &record_value::text(r, &value));
        out.push_str(&format!("{I1}</DataRecord>\n\n"));
        return;
    };
    if normalized {
        let norm = vif::normalized(vib);
        let Some(norm) = norm.filter(|_| !matches!(value, RecordValue::Unknown(_))) else {
            // libmbus writes records it cannot normalize as empty elements.
            out.push_str(&format!(
                "{I1}<DataRecord id=\"{id}\">\n{I1}</DataRecord>\n\n"
            ));
            return;
        };
        open_record(out, id, None);
        common(out, r);
        let quantity = vib.text.as_deref().unwrap_or(norm.quantity);
        element(out, I2, "Unit", norm.unit);
        element(out, I2, "Quantity", quantity);
        let text = match (&value, record_value::number(&value)) {
            (RecordValue::Date(d), _) if d.has_time => format!("{}Z", d.iso()),
            (_, Some(x)) => format!("{:.6}", x * norm.factor + norm.offset),
            _ => record_value::text(r, &value),
        };
        element(out, I2, "Value", &text);
    } else {
        open_record(out, id, frame);
        common(out, r);
        element(out, I2, "Unit", &vif::unit_text(vib));
        element(out, I2, "Value", &record_value::text(r, &value));
    }
    out.push_str(&format!("{I1}</DataRecord>\n\n"));
}

fn common(out: &mut String, r: &Record<'_>) {
    element(out, I2, "Function", function_text(r));
    element(out, I2, "StorageNumber", &r.storage_number().to_string());
    if !r.dife.is_empty() {
        element(out, I2, "Tariff", &r.tariff().to_string());
        element(out, I2, "Device", &r.subunit().to_string());
    }
}

/// libmbus's XML for one or more telegrams of one slave (records numbered on
/// across telegrams; with several telegrams the non-normalized records carry
/// `frame="n"`).
pub fn to_xml(telegrams: &[Application<'_>], normalized: bool) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<MBusData>\n\n");
    let many = telegrams.len() > 1;
    let mut id = 0usize;
    for (n, app) in telegrams.iter().enumerate() {
        match app {
            Application::Error(code) => {
                if n == 0 {
                    out.push_str(&format!("{I1}<SlaveInformation>\n"));
                    element(&mut out, I2, "Error", &vif::error_text(*code));
                    out.push_str(&format!("{I1}</SlaveInformation>\n\n"));
                }
            }
            Application::Fixed(f) => {
                if n == 0 {
                    out.push_str(&format!("{I1}<SlaveInformation>\n"));
                    element(
                        &mut out,
                        I2,
                        "Id",
                        &format!("{:X}", u32::from_le_bytes(f.id)),
                    );
                    element(&mut out, I2, "Medium", vif::fixed_medium_text(f.medium()));
                    element(&mut out, I2, "AccessNumber", &f.access_number.to_string());
                    element(&mut out, I2, "Status", &format!("{:02X}", f.status));
                    out.push_str(&format!("{I1}</SlaveInformation>\n\n"));
                }
                let function = if f.status & 0x40 != 0 {
                    "Stored value"
                } else {
                    "Actual value"
                };
                for (unit, counter) in [(f.units[0], &f.counter1), (f.units[1], &f.counter2)] {
                    open_record(&mut out, id, many.then_some(n));
                    element(&mut out, I2, "Function", function);
                    element(&mut out, I2, "Unit", vif::fixed_unit_text(unit));
                    element(&mut out, I2, "Value", &f.counter(counter).to_string());
                    out.push_str(&format!("{I1}</DataRecord>\n\n"));
                    id += 1;
                }
            }
            Application::Variable {
                header, records, ..
            } => {
                if n == 0 {
                    out.push_str(&format!("{I1}<SlaveInformation>\n"));
                    let mfr = header.manufacturer_text();
                    element(&mut out, I2, "Id", &header.id_text());
                    element(&mut out, I2, "Manufacturer", &mfr);
                    element(&mut out, I2, "Version", &header.version.to_string());
                    let product =
                        vif::product_name(&mfr, header.version, header.medium, header.id[3]);
                    element(&mut out, I2, "ProductName", product);
                    element(&mut out, I2, "Medium", &vif::medium_text(header.medium));
                    element(
                        &mut out,
                        I2,
                        "AccessNumber",
                        &header.access_number.to_string(),
                    );
                    element(&mut out, I2, "Status", &format!("{:02X}", header.status));
                    let [s0, s1] = header.signature;
                    element(&mut out, I2, "Signature", &format!("{s1:02X}{s0:02X}"));
                    out.push_str(&format!("{I1}</SlaveInformation>\n\n"));
                }
                for r in records {
                    record(&mut out, id, many.then_some(n), r, normalized);
                    id += 1;
                }
            }
        }
    }
    out.push_str("</MBusData>\n");
    out
}
