//! The meter side: DLMS pushes built exactly as the Austrian meters send them.
//!
//! The emit side of the same wire modules the decoder uses ([`super::axdr`],
//! [`super::notification`], [`super::security`], [`super::transport`]), for the
//! simulator and tests. Layouts (`shared/notes/dlms.md` §2.1–2.3, §4.1–4.2):
//!
//! | profile | plaintext | security control | M-Bus frames |
//! |---|---|---|---|
//! | Kaifa MA309M (Netz NÖ) | flat, 35 elements, 243 bytes | 0x20 | 256 + 26 |
//! | Sagemcom T210-D (Netz NÖ, since 2023) | flat, power factor long-unsigned | 0x20 | 256 + 26 |
//! | Sagemcom T210-D old firmware | flat, power factor signed long | 0x20 | 263 (`68 01 01 68`) + 19 |
//! | KSM-West Kaifa, three-phase | nested, 16 elements, 336 bytes | 0x21 | 256 + 120 |

use super::axdr::Writer;
use super::datetime::DateTime;
use super::{notification, security, transport, Key};

/// A meter model as it pushes on its customer interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meter {
    /// Kaifa MA309M of Netz NÖ.
    KaifaMa309m,
    /// Sagemcom T210-D of Netz NÖ, current firmware.
    SagemcomT210d,
    /// Sagemcom T210-D of Netz NÖ, firmware before mid-2023 (257-byte first frame).
    SagemcomT210dOldFirmware,
    /// Kaifa meter of the KSM-West operators (TINETZ, IKB, Salzburg Netz, VKW), three-phase.
    KsmWest,
}

/// The values of one push. Raw integers in the units the meters send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushValues {
    /// long-invoke-id-and-priority.
    pub long_invoke_id: u32,
    /// The meter clock (also sent as the notification date-time).
    pub time: DateTime,
    /// +A, Wh.
    pub active_energy_plus: u32,
    /// −A, Wh.
    pub active_energy_minus: u32,
    /// +P, W.
    pub active_power_plus: u32,
    /// −P, W.
    pub active_power_minus: u32,
    /// +R, varh (KSM-West only).
    pub reactive_energy_plus: u32,
    /// −R, varh (KSM-West only).
    pub reactive_energy_minus: u32,
    /// U L1..L3 in 0.1 V.
    pub voltage_decivolt: [u16; 3],
    /// I L1..L3 in 0.01 A.
    pub current_centiampere: [u16; 3],
    /// cos φ × 1000 (Netz NÖ only).
    pub power_factor_milli: i16,
    /// Meter number: 12 digits on Netz NÖ meters, 0-0:96.1.0.255 on KSM-West.
    pub meter_number: String,
    /// COSEM logical device name 0-0:42.0.0.255 (KSM-West only).
    pub device_name: String,
}

/// Unit enumeration values (IEC 62056-6-2 §4.3.2).
mod unit {
    pub const W: u8 = 27;
    pub const WH: u8 = 30;
    pub const VARH: u8 = 32;
    pub const A: u8 = 33;
    pub const V: u8 = 35;
    pub const NONE: u8 = 255;
}

fn electricity(c: u8, d: u8) -> [u8; 6] {
    [1, 0, c, d, 0, 255]
}

impl Meter {
    /// Every profile, for tests and the simulator's `--meter` choices.
    pub const ALL: [Meter; 4] = [
        Meter::KaifaMa309m,
        Meter::SagemcomT210d,
        Meter::SagemcomT210dOldFirmware,
        Meter::KsmWest,
    ];

    /// The profile's command-line name (`kaifa-ma309m`, `sagemcom-t210d`,
    /// `sagemcom-t210d-old-fw`, `ksm-west`).
    pub fn name(self) -> &'static str {
        match self {
            Meter::KaifaMa309m => "kaifa-ma309m",
            Meter::SagemcomT210d => "sagemcom-t210d",
            Meter::SagemcomT210dOldFirmware => "sagemcom-t210d-old-fw",
            Meter::KsmWest => "ksm-west",
        }
    }

    /// The profile of a command-line name.
    pub fn from_name(name: &str) -> Option<Meter> {
        Meter::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Security control byte: 0x20 (suite 0, encrypted) on Netz NÖ, 0x21 on KSM-West.
    pub fn security_control(self) -> u8 {
        match self {
            Meter::KsmWest => 0x21,
            _ => 0x20,
        }
    }

    /// A system title like the meter's own: FLAG id and type bytes, then `serial`.
    pub fn system_title(self, serial: u32) -> [u8; 8] {
        let s = serial.to_be_bytes();
        let head: [u8; 4] = match self {
            Meter::KaifaMa309m => *b"KFMg",
            Meter::SagemcomT210d | Meter::SagemcomT210dOldFirmware => *b"SAGY",
            Meter::KsmWest => [b'K', b'F', b'M', 0x10],
        };
        let [h0, h1, h2, h3] = head;
        [h0, h1, h2, h3, s[0], s[1], s[2], s[3]]
    }

    /// APDU bytes per M-Bus frame.
    fn max_segment(self) -> usize {
        match self {
            // 257-byte first body: C, A, CI, STSAP, DTSAP and 252 APDU bytes.
            Meter::SagemcomT210dOldFirmware => 252,
            _ => 245,
        }
    }

    /// The data-notification (plaintext APDU) of `v`.
    pub fn plaintext(self, v: &PushValues) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Meter::KsmWest => ksm_west(&mut w, v),
            _ => netz_noe(&mut w, v, self == Meter::SagemcomT210dOldFirmware),
        }
        notification::emit(v.long_invoke_id, Some(&v.time), &w.into_bytes())
    }

    /// The whole telegram as it appears on the wire: M-Bus frames around the
    /// encrypted general-glo-ciphering APDU.
    pub fn telegram(
        self,
        v: &PushValues,
        key: &Key,
        system_title: &[u8; 8],
        frame_counter: u32,
    ) -> Vec<u8> {
        let apdu = security::emit(
            system_title,
            self.security_control(),
            frame_counter,
            key,
            None,
            &self.plaintext(v),
        );
        transport::emit(&apdu, self.max_segment())
    }
}

/// Netz NÖ flat layout: clock, 11 × {OBIS, value, scaler-unit}, meter number.
fn netz_noe(w: &mut Writer, v: &PushValues, signed_power_factor: bool) {
    w.structure(35).octet_string(&v.time.to_bytes());
    for (c, d, value, u) in [
        (1, 8, v.active_energy_plus, unit::WH),
        (2, 8, v.active_energy_minus, unit::WH),
        (1, 7, v.active_power_plus, unit::W),
        (2, 7, v.active_power_minus, unit::W),
    ] {
        w.octet_string(&electricity(c, d))
            .u32(value)
            .scaler_unit(0, u);
    }
    for (c, value) in [32, 52, 72].into_iter().zip(v.voltage_decivolt) {
        w.octet_string(&electricity(c, 7))
            .u16(value)
            .scaler_unit(-1, unit::V);
    }
    for (c, value) in [31, 51, 71].into_iter().zip(v.current_centiampere) {
        w.octet_string(&electricity(c, 7))
            .u16(value)
            .scaler_unit(-2, unit::A);
    }
    w.octet_string(&electricity(13, 7));
    if signed_power_factor {
        w.i16(v.power_factor_milli);
    } else {
        w.u16(v.power_factor_milli as u16);
    }
    w.scaler_unit(-3, unit::NONE);
    w.octet_string(v.meter_number.as_bytes());
}

/// KSM-West nested layout (three-phase): clock, serial, device name, then
/// {OBIS, value, scaler-unit} structures.
fn ksm_west(w: &mut Writer, v: &PushValues) {
    w.structure(16)
        .octet_string(&[0, 0, 1, 0, 0, 255])
        .octet_string(&v.time.to_bytes());
    w.structure(2)
        .octet_string(&[0, 0, 96, 1, 0, 255])
        .octet_string(v.meter_number.as_bytes());
    w.structure(2)
        .octet_string(&[0, 0, 42, 0, 0, 255])
        .octet_string(v.device_name.as_bytes());
    for (c, value) in [32, 52, 72].into_iter().zip(v.voltage_decivolt) {
        w.structure(3)
            .octet_string(&electricity(c, 7))
            .u16(value)
            .scaler_unit(-1, unit::V);
    }
    for (c, value) in [31, 51, 71].into_iter().zip(v.current_centiampere) {
        w.structure(3)
            .octet_string(&electricity(c, 7))
            .u16(value)
            .scaler_unit(-2, unit::A);
    }
    for (c, d, value, u) in [
        (1, 7, v.active_power_plus, unit::W),
        (2, 7, v.active_power_minus, unit::W),
        (1, 8, v.active_energy_plus, unit::WH),
        (2, 8, v.active_energy_minus, unit::WH),
        (3, 8, v.reactive_energy_plus, unit::VARH),
        (4, 8, v.reactive_energy_minus, unit::VARH),
    ] {
        w.structure(3)
            .octet_string(&electricity(c, d))
            .u32(value)
            .scaler_unit(0, u);
    }
}
