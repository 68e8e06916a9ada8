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
//!
//! and the HDLC meters (§2.4, §4.3, §4.4; one HDLC UI frame, control `0x13`, LLC
//! `E6 E7 00`, unless GBT):
//!
//! | profile | plaintext | security control | HDLC frames (dest / source) |
//! |---|---|---|---|
//! | Siemens IM350 (Wiener Netze) | positional, 10 elements | 0x20 | 1 (`CF` / `00 02 00 23`) |
//! | Iskraemeco AM550 (Wiener Netze) | positional, 9 elements | 0x20 | 1 (`CF` / `02 23`) |
//! | L+G E450 (Netz Burgenland) | positional, 14 elements | 0x30 | 1 (`CE FF` / `03`) |
//! | L+G E450 (Energienetze Steiermark) | push with object list, 18 objects | 0x30 | GBT, 1 block per frame (`CE FF` / `03`) |

use super::axdr::Writer;
use super::datetime::DateTime;
use super::{gbt, hdlc, notification, security, transport, Key};

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
    /// Siemens IM350 of Wiener Netze (vector `wienernetze_siemens_im350`).
    WienerNetzeIm350,
    /// Iskraemeco AM550 of Wiener Netze (vector `wienernetze_iskra_am550`).
    WienerNetzeAm550,
    /// Landis+Gyr E450 of Netz Burgenland (vector `amsreader_gh501_1_lg_e450_burgenland`).
    BurgenlandE450,
    /// Landis+Gyr E450 pushing a general block transfer with an object list
    /// (vector `klagenfurt_lg_e450_gbt_zero_key`; Energienetze Steiermark and
    /// Stadtwerke Klagenfurt use this push).
    SteiermarkE450,
}

/// The values of one push. Raw integers in the units the meters send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushValues {
    /// long-invoke-id-and-priority.
    pub long_invoke_id: u32,
    /// The meter clock (also sent as the notification date-time; the Landis+Gyr
    /// meters send it without hundredths and deviation, see `lgz_time`).
    pub time: DateTime,
    /// +A, Wh.
    pub active_energy_plus: u32,
    /// −A, Wh.
    pub active_energy_minus: u32,
    /// +P, W.
    pub active_power_plus: u32,
    /// −P, W.
    pub active_power_minus: u32,
    /// +R, varh (KSM-West, Wiener Netze, Steiermark).
    pub reactive_energy_plus: u32,
    /// −R, varh (KSM-West, Wiener Netze, Steiermark).
    pub reactive_energy_minus: u32,
    /// U L1..L3 in 0.1 V (the Landis+Gyr layouts send whole volts: `/ 10`, truncated).
    pub voltage_decivolt: [u16; 3],
    /// I L1..L3 in 0.01 A.
    pub current_centiampere: [u16; 3],
    /// cos φ × 1000 (Netz NÖ only).
    pub power_factor_milli: i16,
    /// Meter number: 12 digits on Netz NÖ meters, 0-0:96.1.0.255 on KSM-West and
    /// Steiermark; 16 characters (`SMS…`) on the IM350, 8 on the Burgenland E450;
    /// not sent by the AM550.
    pub meter_number: String,
    /// COSEM logical device name 0-0:42.0.0.255 (KSM-West only).
    pub device_name: String,
}

/// Values only the HDLC layouts carry. Kept apart from [`PushValues`] so that
/// its existing struct literals stay valid; [`Meter::plaintext`] and
/// [`Meter::telegram`] send the defaults (zeros).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraValues {
    /// +Q, 1-0:3.7.0, var (Wiener Netze, Steiermark).
    pub reactive_power_plus: u32,
    /// −Q, 1-0:4.7.0, var (Wiener Netze, Steiermark).
    pub reactive_power_minus: u32,
    /// The three phase angles of the Burgenland layout, raw long-unsigned (the
    /// unit is not documented; degrees per r00tat/smartmeter_homeassistant_burgenland).
    pub phase_angle: [u16; 3],
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
    pub const ALL: [Meter; 8] = [
        Meter::KaifaMa309m,
        Meter::SagemcomT210d,
        Meter::SagemcomT210dOldFirmware,
        Meter::KsmWest,
        Meter::WienerNetzeIm350,
        Meter::WienerNetzeAm550,
        Meter::BurgenlandE450,
        Meter::SteiermarkE450,
    ];

    /// The profile's command-line name (`kaifa-ma309m`, `sagemcom-t210d`,
    /// `sagemcom-t210d-old-fw`, `ksm-west`, `wienernetze-im350`,
    /// `wienernetze-am550`, `burgenland-e450`, `steiermark-e450`).
    pub fn name(self) -> &'static str {
        match self {
            Meter::KaifaMa309m => "kaifa-ma309m",
            Meter::SagemcomT210d => "sagemcom-t210d",
            Meter::SagemcomT210dOldFirmware => "sagemcom-t210d-old-fw",
            Meter::KsmWest => "ksm-west",
            Meter::WienerNetzeIm350 => "wienernetze-im350",
            Meter::WienerNetzeAm550 => "wienernetze-am550",
            Meter::BurgenlandE450 => "burgenland-e450",
            Meter::SteiermarkE450 => "steiermark-e450",
        }
    }

    /// The profile of a command-line name.
    pub fn from_name(name: &str) -> Option<Meter> {
        Meter::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Security control byte: 0x20 (suite 0, encrypted) on Netz NÖ and Wiener
    /// Netze, 0x21 on KSM-West, 0x30 (encrypted and authenticated: 12-byte GCM
    /// tag, AAD = SC ‖ authentication key) on the Landis+Gyr E450.
    pub fn security_control(self) -> u8 {
        match self {
            Meter::KsmWest => 0x21,
            Meter::BurgenlandE450 | Meter::SteiermarkE450 => 0x30,
            _ => 0x20,
        }
    }

    /// Whether the telegrams carry a GCM tag, so reading them needs the
    /// authentication key.
    pub fn needs_auth_key(self) -> bool {
        security::SecurityControl(self.security_control()).authenticated()
    }

    /// A system title like the meter's own: FLAG id and type bytes, then `serial`.
    pub fn system_title(self, serial: u32) -> [u8; 8] {
        let s = serial.to_be_bytes();
        let head: [u8; 4] = match self {
            Meter::KaifaMa309m => *b"KFMg",
            Meter::SagemcomT210d | Meter::SagemcomT210dOldFirmware => *b"SAGY",
            Meter::KsmWest => [b'K', b'F', b'M', 0x10],
            Meter::WienerNetzeIm350 => *b"SMSg",
            Meter::WienerNetzeAm550 => *b"ISKi",
            Meter::BurgenlandE450 | Meter::SteiermarkE450 => *b"LGZg",
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

    /// HDLC destination and source address bytes, as in the real vectors.
    fn hdlc_addresses(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Meter::WienerNetzeIm350 => (&[0xCF], &[0x00, 0x02, 0x00, 0x23]),
            Meter::WienerNetzeAm550 => (&[0xCF], &[0x02, 0x23]),
            _ => (&[0xCE, 0xFF], &[0x03]),
        }
    }

    /// The data-notification (plaintext APDU) of `v`, with [`ExtraValues`] zero.
    pub fn plaintext(self, v: &PushValues) -> Vec<u8> {
        self.plaintext_with(v, &ExtraValues::default())
    }

    /// The data-notification (plaintext APDU) of `v` and `x`.
    pub fn plaintext_with(self, v: &PushValues, x: &ExtraValues) -> Vec<u8> {
        let mut time = v.time;
        let body = match self {
            Meter::KsmWest => {
                let mut w = Writer::new();
                ksm_west(&mut w, v);
                w.into_bytes()
            }
            Meter::WienerNetzeIm350 | Meter::WienerNetzeAm550 => {
                wiener_netze(v, x, self == Meter::WienerNetzeIm350)
            }
            Meter::BurgenlandE450 => {
                time = lgz_time(&v.time, 0x00);
                burgenland(v, x)
            }
            Meter::SteiermarkE450 => {
                time = lgz_time(&v.time, 0x00);
                object_list_push(v, x)
            }
            _ => {
                let mut w = Writer::new();
                netz_noe(&mut w, v, self == Meter::SagemcomT210dOldFirmware);
                w.into_bytes()
            }
        };
        notification::emit(v.long_invoke_id, Some(&time), &body)
    }

    /// The whole telegram as it appears on the wire, [`ExtraValues`] zero and,
    /// on the Landis+Gyr E450, an all-zero authentication key (as on the
    /// Klagenfurt meter of vector `klagenfurt_lg_e450_gbt_zero_key`).
    pub fn telegram(
        self,
        v: &PushValues,
        key: &Key,
        system_title: &[u8; 8],
        frame_counter: u32,
    ) -> Vec<u8> {
        self.telegram_with(
            v,
            &ExtraValues::default(),
            key,
            None,
            system_title,
            frame_counter,
        )
    }

    /// The whole telegram as it appears on the wire: M-Bus frames, one HDLC
    /// frame, or GBT blocks in HDLC frames around the encrypted
    /// general-glo-ciphering APDU. `auth_key` goes into the GCM tag's AAD where
    /// the security control is 0x30 (all zeros when `None`); other meters
    /// ignore it.
    pub fn telegram_with(
        self,
        v: &PushValues,
        x: &ExtraValues,
        key: &Key,
        auth_key: Option<&Key>,
        system_title: &[u8; 8],
        frame_counter: u32,
    ) -> Vec<u8> {
        let apdu = security::emit(
            system_title,
            self.security_control(),
            frame_counter,
            key,
            auth_key,
            &self.plaintext_with(v, x),
        );
        let (destination, source) = self.hdlc_addresses();
        match self {
            Meter::WienerNetzeIm350 | Meter::WienerNetzeAm550 | Meter::BurgenlandE450 => {
                hdlc::emit(
                    &apdu,
                    destination,
                    source,
                    hdlc::CONTROL_UI,
                    hdlc::MAX_LENGTH,
                )
            }
            // 129-byte information fields: 119 data bytes in the first block, then 122.
            Meter::SteiermarkE450 => {
                gbt::emit(&apdu, destination, source, hdlc::CONTROL_UI, GBT_MAX_INFO)
            }
            _ => transport::emit(&apdu, self.max_segment()),
        }
    }
}

/// Information field size of the E450's GBT frames (frame length 0x8B).
const GBT_MAX_INFO: usize = 129;

/// The E450's date-time: hundredths and deviation not specified, as in vectors
/// `amsreader_gh501_1_lg_e450_burgenland` and `klagenfurt_lg_e450_gbt_zero_key`
/// (local time without UTC offset).
fn lgz_time(t: &DateTime, clock_status: u8) -> DateTime {
    DateTime {
        hundredths: 0xFF,
        deviation: None,
        clock_status,
        ..*t
    }
}

/// Wiener Netze positional layout (`shared/notes/dlms.md` §2.4, vectors
/// `wienernetze_siemens_im350`, `wienernetze_iskra_am550`): structure of
/// [meter number (Siemens: 16 characters),] clock, +A −A (Wh), +R −R (varh),
/// +P −P (W), +Q −Q (var), all double-long-unsigned without OBIS codes.
fn wiener_netze(v: &PushValues, x: &ExtraValues, meter_number: bool) -> Vec<u8> {
    let mut w = Writer::new();
    w.structure(if meter_number { 10 } else { 9 });
    if meter_number {
        w.octet_string(v.meter_number.as_bytes());
    }
    w.octet_string(&v.time.to_bytes());
    for value in [
        v.active_energy_plus,
        v.active_energy_minus,
        v.reactive_energy_plus,
        v.reactive_energy_minus,
        v.active_power_plus,
        v.active_power_minus,
        x.reactive_power_plus,
        x.reactive_power_minus,
    ] {
        w.u32(value);
    }
    w.into_bytes()
}

/// Netz Burgenland positional layout (`shared/notes/dlms.md` §2.4, vector
/// `amsreader_gh501_1_lg_e450_burgenland`): structure of U1..U3 (whole volts,
/// `voltage_decivolt / 10` truncated), I1..I3 (0.01 A) as long-unsigned, +P −P (W),
/// +A −A (Wh) as double-long-unsigned, three phase angles (long-unsigned), the
/// meter id (8 printable characters on the real meter).
fn burgenland(v: &PushValues, x: &ExtraValues) -> Vec<u8> {
    let mut w = Writer::new();
    w.structure(14);
    for d in v.voltage_decivolt {
        w.u16(d / 10);
    }
    for c in v.current_centiampere {
        w.u16(c);
    }
    for value in [
        v.active_power_plus,
        v.active_power_minus,
        v.active_energy_plus,
        v.active_energy_minus,
    ] {
        w.u32(value);
    }
    for a in x.phase_angle {
        w.u16(a);
    }
    w.octet_string(v.meter_number.as_bytes());
    w.into_bytes()
}

/// Push setup object 0-0:25.9.0.255 on channel 8 as the E450 names it.
const PUSH_SETUP: [u8; 6] = [0, 8, 25, 9, 0, 255];

/// The capture objects of the E450 push: class id, logical name, attribute.
const OBJECT_LIST: [(u16, [u8; 6], i8); 18] = [
    (40, PUSH_SETUP, 2),
    (40, PUSH_SETUP, 1),
    (1, [0, 0, 96, 1, 0, 255], 2),
    (8, [0, 0, 1, 0, 0, 255], 2),
    (3, [1, 0, 1, 7, 0, 255], 2),
    (3, [1, 0, 2, 7, 0, 255], 2),
    (3, [1, 0, 1, 8, 0, 255], 2),
    (3, [1, 0, 2, 8, 0, 255], 2),
    (3, [1, 0, 3, 7, 0, 255], 2),
    (3, [1, 0, 4, 7, 0, 255], 2),
    (3, [1, 0, 3, 8, 0, 255], 2),
    (3, [1, 0, 4, 8, 0, 255], 2),
    (3, [1, 0, 31, 7, 0, 255], 2),
    (3, [1, 0, 51, 7, 0, 255], 2),
    (3, [1, 0, 71, 7, 0, 255], 2),
    (3, [1, 0, 32, 7, 0, 255], 2),
    (3, [1, 0, 52, 7, 0, 255], 2),
    (3, [1, 0, 72, 7, 0, 255], 2),
];

/// Landis+Gyr "push with object list" (`shared/notes/dlms.md` §4.4, vector
/// `klagenfurt_lg_e450_gbt_zero_key`): a structure whose first element is the
/// object list `array of {long-unsigned class, octet-string OBIS, integer
/// attribute, long-unsigned data index}` and whose further elements are the
/// objects' values in the same order: the list itself is value 1, then the push
/// setup's logical name, the meter number, the clock (12-byte octet-string,
/// clock status from `v.time`), and the registers without scaler-unit: P, energy
/// and reactive values as double-long-unsigned (W, Wh, var, varh), currents as
/// long-unsigned in 0.01 A, voltages as long-unsigned in whole volts
/// (`voltage_decivolt / 10` truncated).
fn object_list_push(v: &PushValues, x: &ExtraValues) -> Vec<u8> {
    let n = OBJECT_LIST.len() as u8;
    // structure(18) { array(18) of structure(4) … } — A-XDR tags 02 and 01.
    let mut out = vec![0x02, n, 0x01, n];
    for (class, obis, attribute) in OBJECT_LIST {
        let [c0, c1] = class.to_be_bytes();
        out.extend_from_slice(&[0x02, 0x04, 0x12, c0, c1, 0x09, 0x06]);
        out.extend_from_slice(&obis);
        out.extend_from_slice(&[0x0F, attribute as u8, 0x12, 0x00, 0x00]);
    }
    let mut w = Writer::new();
    w.octet_string(&PUSH_SETUP)
        .octet_string(v.meter_number.as_bytes())
        .octet_string(&lgz_time(&v.time, v.time.clock_status).to_bytes());
    for value in [
        v.active_power_plus,
        v.active_power_minus,
        v.active_energy_plus,
        v.active_energy_minus,
        x.reactive_power_plus,
        x.reactive_power_minus,
        v.reactive_energy_plus,
        v.reactive_energy_minus,
    ] {
        w.u32(value);
    }
    for c in v.current_centiampere {
        w.u16(c);
    }
    for d in v.voltage_decivolt {
        w.u16(d / 10);
    }
    out.extend_from_slice(&w.into_bytes());
    out
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
