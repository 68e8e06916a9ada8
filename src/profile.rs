//! Meter profiles: how one meter of one grid operator talks on its customer
//! interface (framing, serial settings, connector, value layout, keys).
//!
//! Adding a meter is one entry in [`PROFILES`]. The decoder detects framing and
//! layout from the bytes whatever the profile; a profile adds the serial
//! settings, checks that telegrams look the way that meter sends them
//! ([`Profile::check_framing`], [`Profile::check_layout`]) and says which keys the
//! meter needs. Facts per meter: `shared/notes/dlms.md` §1, §2.1–§2.4, §4 and
//! `shared/notes/dsmr.md`; the test vector named in each entry proves it.

use crate::dlms::reading::Layout;
use crate::Protocol;

/// How telegrams are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// M-Bus long frames with DLMS transport segments (EN 13757-2, IEC 62056-7-6).
    Mbus,
    /// HDLC type 3 frames with the APDU after the LLC header (IEC 62056-46).
    Hdlc,
    /// HDLC frames each carrying one general block transfer block (Landis+Gyr).
    HdlcGbt,
    /// A DSMR P1 text telegram (`/` … `!CRC`).
    P1,
    /// A DSMR P1 telegram inside a bare general-glo-ciphering APDU (`0xDB`).
    P1Encrypted,
}

impl Framing {
    /// The framing's name: `mbus`, `hdlc`, `hdlc+gbt`, `p1`, `p1-encrypted`.
    pub fn name(self) -> &'static str {
        match self {
            Framing::Mbus => "mbus",
            Framing::Hdlc => "hdlc",
            Framing::HdlcGbt => "hdlc+gbt",
            Framing::P1 => "p1",
            Framing::P1Encrypted => "p1-encrypted",
        }
    }

    /// How its frames start, for error messages.
    fn describe(self) -> &'static str {
        match self {
            Framing::Mbus => "M-Bus (0x68)",
            Framing::Hdlc | Framing::HdlcGbt => "HDLC (0x7e)",
            Framing::P1 => "DSMR P1 (\"/\")",
            Framing::P1Encrypted => "general-glo-ciphering (0xdb)",
        }
    }

    /// Whether a telegram starting with `first` may be framed this way. A bare
    /// APDU (`0xDB`, `0x0F`) is accepted for every DLMS framing: it is what
    /// [`crate::dlms::decrypt_apdu`] and MQTT "raw" publishers hand on.
    pub fn accepts(self, first: u8) -> bool {
        use crate::dlms::{hdlc, notification, security};
        let bare = first == security::TAG || first == notification::TAG;
        match self {
            Framing::Mbus => first == crate::mbus::frame::START || bare,
            Framing::Hdlc | Framing::HdlcGbt => first == hdlc::FLAG || bare,
            Framing::P1 => first == b'/',
            Framing::P1Encrypted => first == security::TAG || first == b'/',
        }
    }
}

/// Serial settings of a customer interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serial {
    /// Baud rate.
    pub baudrate: u32,
    /// Data bits (7 or 8).
    pub data_bits: u8,
    /// Parity: `"even"`, `"none"` or `"odd"`.
    pub parity: &'static str,
    /// Stop bits.
    pub stop_bits: u8,
}

impl Serial {
    /// `2400 8E1`-style summary.
    pub fn summary(&self) -> String {
        let p = match self.parity {
            "even" => 'E',
            "odd" => 'O',
            _ => 'N',
        };
        format!(
            "{} {}{}{}",
            self.baudrate, self.data_bits, p, self.stop_bits
        )
    }
}

/// M-Bus customer interface of the Austrian push meters: 2400 8E1.
const MBUS_2400_8E1: Serial = Serial {
    baudrate: 2400,
    data_bits: 8,
    parity: "even",
    stop_bits: 1,
};
/// Optical (IEC 62056-21 style IR head) or M-Bus interface at 9600 8N1.
const S_9600_8N1: Serial = Serial {
    baudrate: 9600,
    data_bits: 8,
    parity: "none",
    stop_bits: 1,
};
/// 2400 8N1 (Landis+Gyr M-Bus customer interface).
const S_2400_8N1: Serial = Serial {
    baudrate: 2400,
    data_bits: 8,
    parity: "none",
    stop_bits: 1,
};
/// DSMR 4/5 and the P1-style ports: 115200 8N1.
const P1_115200: Serial = Serial {
    baudrate: 115_200,
    data_bits: 8,
    parity: "none",
    stop_bits: 1,
};
/// DSMR 2.2/3.0 P1: 9600 7E1.
const P1_9600_7E1: Serial = Serial {
    baudrate: 9600,
    data_bits: 7,
    parity: "even",
    stop_bits: 1,
};

/// Which keys the meter's telegrams need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Sent in the clear.
    None,
    /// Encrypted without tag (security control 0x20/0x21): the encryption key.
    Encrypted,
    /// Encrypted and authenticated (security control 0x30): both keys.
    Authenticated,
    /// Encrypted and authenticated with a published authentication key
    /// (Luxembourg Smarty): the encryption key only.
    PublicTag,
}

impl Security {
    /// `none`, `encrypted`, `authenticated`.
    pub fn name(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::Encrypted => "encrypted",
            Security::Authenticated => "authenticated",
            Security::PublicTag => "authenticated (public key)",
        }
    }
}

/// One meter as one operator runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name (`kaifa-ma309m-netznoe`, …).
    pub name: &'static str,
    /// Other names that select it: MBusPico's `MBUSPICO_DEVICE` values and the
    /// simulator's meter names.
    pub aliases: &'static [&'static str],
    /// Meter make and model.
    pub meter: &'static str,
    /// Grid operators that install it this way.
    pub operators: &'static str,
    /// Protocol of its telegrams.
    pub protocol: Protocol,
    /// Framing on the wire.
    pub framing: Framing,
    /// Layout of the data-notification (`None` for DSMR telegrams).
    pub layout: Option<Layout>,
    /// Keys needed.
    pub security: Security,
    /// Serial settings of the interface.
    pub serial: Serial,
    /// The interface and connector.
    pub connector: &'static str,
    /// IANA time zone of the meter clock (used for DSMR timestamps).
    pub tz: &'static str,
    /// The test vectors (ids in `tests/data/*/vectors.json`) that prove it, and
    /// how far: `"decoded"` with a key, `"framing"` checked only (no key published).
    pub vectors: &'static [(&'static str, &'static str)],
    /// The simulator meter that plays it (`mbuspico simulate --meter`), if any.
    pub simulator: Option<&'static str>,
}

/// Every supported meter. Sources per entry: `shared/notes/dlms.md` (§ given)
/// and `shared/notes/dsmr.md`; vectors in `tests/data/dlms/vectors.json` and
/// `tests/data/dsmr/vectors.json`.
pub static PROFILES: &[Profile] = &[
    // dlms.md §1, §2.1, §4.1.
    Profile {
        name: "kaifa-ma309m-netznoe",
        aliases: &["kaifa-ma309m"],
        meter: "Kaifa MA309M",
        operators: "Netz NÖ (EVN)",
        protocol: Protocol::Dlms,
        framing: Framing::Mbus,
        layout: Some(Layout::Flat),
        security: Security::Encrypted,
        serial: MBUS_2400_8E1,
        connector: "M-Bus customer interface (RJ12), M-Bus level converter",
        tz: "Europe/Vienna",
        vectors: &[
            ("netznoe_doc_example_kaifa_ma309m", "decoded"),
            ("fkw9_kaifa_ma309m_real", "decoded"),
        ],
        simulator: Some("kaifa-ma309m"),
    },
    // dlms.md §2.2, §4.1.
    Profile {
        name: "sagemcom-t210d-netznoe",
        aliases: &["sagemcom-t210d", "sagemcom-t210d-old-fw"],
        meter: "Sagemcom T210-D",
        operators: "Netz NÖ (EVN)",
        protocol: Protocol::Dlms,
        framing: Framing::Mbus,
        layout: Some(Layout::Flat),
        security: Security::Encrypted,
        serial: MBUS_2400_8E1,
        connector: "M-Bus customer interface (RJ12), M-Bus level converter",
        tz: "Europe/Vienna",
        vectors: &[
            ("fkw9_sagemcom_t210d_L01", "decoded"),
            ("energyagent_sagemcom_t210d_LFA", "decoded"),
        ],
        simulator: Some("sagemcom-t210d"),
    },
    // dlms.md §2.3, §4.2.
    Profile {
        name: "ksm-west",
        aliases: &["kaifa-ksm-west"],
        meter: "Kaifa MA309M / MA110M",
        operators: "TINETZ, IKB, Salzburg Netz, Vorarlberger Energienetze (VKW), Stadtwerke Kufstein, E-Werke Reutte",
        protocol: Protocol::Dlms,
        framing: Framing::Mbus,
        layout: Some(Layout::Nested),
        security: Security::Encrypted,
        serial: MBUS_2400_8E1,
        connector: "M-Bus customer interface (RJ12), M-Bus level converter",
        tz: "Europe/Vienna",
        vectors: &[
            ("tinetz_doc_example_kaifa_1phase", "decoded"),
            ("amsreader_gh905_kaifa_poland", "decoded"),
            ("fkw9_vkw_kaifa_nokey", "framing"),
        ],
        simulator: Some("ksm-west"),
    },
    // dlms.md §2.3, §4.2 (VKW confirms the KSM-West layout for the DM515).
    Profile {
        name: "honeywell-dm515-vkw",
        aliases: &["HONEYWELL_DM515"],
        meter: "Honeywell (Elster) DM515",
        operators: "Vorarlberger Energienetze (VKW)",
        protocol: Protocol::Dlms,
        framing: Framing::Mbus,
        layout: Some(Layout::Nested),
        security: Security::Encrypted,
        serial: MBUS_2400_8E1,
        connector: "M-Bus customer interface (RJ12), M-Bus level converter",
        tz: "Europe/Vienna",
        vectors: &[("fkw9_issue12_honeywell_dm515_vkw_nokey", "framing")],
        simulator: None,
    },
    // dlms.md §2.4, §4.3.
    Profile {
        name: "wienernetze-im350",
        aliases: &["SIEMENS_IM350"],
        meter: "Siemens IM350 / IM150",
        operators: "Wiener Netze",
        protocol: Protocol::Dlms,
        framing: Framing::Hdlc,
        layout: Some(Layout::WienerNetze),
        security: Security::Encrypted,
        serial: S_9600_8N1,
        connector: "optical customer interface (IR read head)",
        tz: "Europe/Vienna",
        vectors: &[("wienernetze_siemens_im350", "decoded")],
        simulator: Some("wienernetze-im350"),
    },
    // dlms.md §2.4, §4.3.
    Profile {
        name: "wienernetze-am550",
        aliases: &["ISKRA_AM550"],
        meter: "Iskraemeco AM550",
        operators: "Wiener Netze",
        protocol: Protocol::Dlms,
        framing: Framing::Hdlc,
        layout: Some(Layout::WienerNetze),
        security: Security::Encrypted,
        serial: S_9600_8N1,
        connector: "optical customer interface (IR read head)",
        tz: "Europe/Vienna",
        vectors: &[("wienernetze_iskra_am550", "decoded")],
        simulator: Some("wienernetze-am550"),
    },
    // dlms.md §2.4, §4.3.
    Profile {
        name: "wienernetze-e450",
        aliases: &["LANDISGYR_E450_WIENERNETZE"],
        meter: "Landis+Gyr E450",
        operators: "Wiener Netze",
        protocol: Protocol::Dlms,
        framing: Framing::Hdlc,
        layout: Some(Layout::WienerNetze),
        security: Security::Encrypted,
        serial: S_9600_8N1,
        connector: "optical customer interface (IR read head)",
        tz: "Europe/Vienna",
        vectors: &[("wienernetze_lg_e450", "decoded")],
        simulator: None,
    },
    // dlms.md §2.4 (KAS interface description), §4.3.
    Profile {
        name: "kaernten-am550",
        aliases: &["ISKRA_AM550_KNG"],
        meter: "Iskraemeco AM550",
        operators: "Kärnten Netz (KNG-Kärnten Netz GmbH)",
        protocol: Protocol::Dlms,
        framing: Framing::Hdlc,
        layout: Some(Layout::WienerNetze),
        security: Security::Encrypted,
        serial: P1_115200,
        connector: "RJ12 P1-style customer interface (data request pin 2, inverted data pin 5)",
        tz: "Europe/Vienna",
        vectors: &[("amsreader_gh787_1_iskra_am550_kaernten_nokey", "framing")],
        simulator: Some("wienernetze-am550"),
    },
    // dlms.md §2.4, §4.3.
    Profile {
        name: "burgenland-e450",
        aliases: &["LANDISGYR_E450_BURGENLAND"],
        meter: "Landis+Gyr E450",
        operators: "Netz Burgenland",
        protocol: Protocol::Dlms,
        framing: Framing::Hdlc,
        layout: Some(Layout::Burgenland),
        security: Security::Authenticated,
        serial: S_2400_8N1,
        connector: "M-Bus customer interface, M-Bus level converter (also reported on the optical port at 9600 8N1)",
        tz: "Europe/Vienna",
        vectors: &[
            ("amsreader_gh501_1_lg_e450_burgenland", "decoded"),
            ("amsreader_gh501_2_lg_e450_burgenland", "decoded"),
        ],
        simulator: Some("burgenland-e450"),
    },
    // dlms.md §2.4, §4.4.
    Profile {
        name: "steiermark-e450",
        aliases: &["LANDISGYR_E450_STEIERMARK"],
        meter: "Landis+Gyr E450",
        operators: "Energienetze Steiermark; Stadtwerke Klagenfurt (reported)",
        protocol: Protocol::Dlms,
        framing: Framing::HdlcGbt,
        layout: Some(Layout::ObjectList),
        security: Security::Authenticated,
        serial: S_2400_8N1,
        connector: "M-Bus customer interface, M-Bus level converter (not confirmed by a vector)",
        tz: "Europe/Vienna",
        vectors: &[
            ("amsreader_em_ct623_lg_e450_steiermark_nokey", "framing"),
            ("klagenfurt_lg_e450_gbt_zero_key", "decoded without tag check"),
        ],
        simulator: Some("steiermark-e450"),
    },
    // dlms.md §2.4, §4.4.
    Profile {
        name: "lg-e570",
        aliases: &["LANDISGYR_E570"],
        meter: "Landis+Gyr E570",
        operators: "Swiss operators (smartmeter-datacollector's test meter)",
        protocol: Protocol::Dlms,
        framing: Framing::HdlcGbt,
        layout: Some(Layout::ObjectList),
        security: Security::Encrypted,
        serial: S_2400_8N1,
        connector: "M-Bus customer interface, M-Bus level converter",
        tz: "Europe/Zurich",
        vectors: &[("sdc_lg_e570_encrypted", "decoded")],
        simulator: None,
    },
    // dlms.md §2.4: the DSMR telegram inside a bare general-glo-ciphering APDU.
    Profile {
        name: "steiermark-t210d",
        aliases: &["SAGEMCOM_T210D_STEIERMARK", "austria-sagemcom"],
        meter: "Sagemcom T210-D-R",
        operators: "Energienetze Steiermark, Energie Graz, Feistritzwerke",
        protocol: Protocol::Dsmr,
        framing: Framing::P1Encrypted,
        layout: None,
        security: Security::Authenticated,
        serial: P1_115200,
        connector: "P1 port (RJ12)",
        tz: "Europe/Vienna",
        vectors: &[("energyagent_sagemcom_sag5_dsmr_p1", "decoded without tag check")],
        simulator: Some("austria-sagemcom"),
    },
    // dsmr.md: DSMR 4.x/5.0 (Netherlands).
    Profile {
        name: "dsmr5",
        aliases: &["dsmr4"],
        meter: "DSMR 4/5 meters (Iskra, Kaifa, Landis+Gyr, Sagemcom, …)",
        operators: "Dutch grid operators",
        protocol: Protocol::Dsmr,
        framing: Framing::P1,
        layout: None,
        security: Security::None,
        serial: P1_115200,
        connector: "P1 port (RJ12), 5 V open-collector data (inverted)",
        tz: "Europe/Amsterdam",
        vectors: &[
            ("dsmr_parser/TELEGRAM_V5", "decoded"),
            ("dsmr_parser/TELEGRAM_V4_2", "decoded"),
        ],
        simulator: Some("dsmr5"),
    },
    // dsmr.md: DSMR 2.2/3.0 (Netherlands).
    Profile {
        name: "dsmr22",
        aliases: &["dsmr3"],
        meter: "DSMR 2.2/3.0 meters (Iskra MT382, Kamstrup, …)",
        operators: "Dutch grid operators",
        protocol: Protocol::Dsmr,
        framing: Framing::P1,
        layout: None,
        security: Security::None,
        serial: P1_9600_7E1,
        connector: "P1 port (RJ11/RJ12)",
        tz: "Europe/Amsterdam",
        vectors: &[
            ("dsmr_parser/TELEGRAM_V2_2", "decoded"),
            ("dsmr_parser/TELEGRAM_V3", "decoded"),
        ],
        simulator: Some("dsmr22"),
    },
    // dsmr.md: Fluvius e-MUCS.
    Profile {
        name: "belgium-fluvius",
        aliases: &["FLUVIUS", "belgium"],
        meter: "e-MUCS meters (Sagemcom S211/T211, Landis+Gyr E360, …)",
        operators: "Fluvius (Belgium)",
        protocol: Protocol::Dsmr,
        framing: Framing::P1,
        layout: None,
        security: Security::None,
        serial: P1_115200,
        connector: "P1 port (RJ12)",
        tz: "Europe/Brussels",
        vectors: &[("dsmr_parser/TELEGRAM_FLUVIUS_V171", "decoded")],
        simulator: Some("belgium"),
    },
    // dsmr.md: Luxembourg Smarty P1 v1.1.3.
    Profile {
        name: "luxembourg-smarty",
        aliases: &["SMARTY"],
        meter: "Sagemcom T210-D (Smarty)",
        operators: "Creos and the Luxembourg operators",
        protocol: Protocol::Dsmr,
        framing: Framing::P1Encrypted,
        layout: None,
        security: Security::PublicTag,
        serial: P1_115200,
        connector: "P1 port (RJ12)",
        tz: "Europe/Luxembourg",
        vectors: &[("esphome-libs/encrypted_packet.bin", "decoded")],
        simulator: Some("luxembourg-smarty"),
    },
];

/// The profile called `name` (or one of its aliases), any case, `_` or `-`.
pub fn find(name: &str) -> Option<&'static Profile> {
    let norm = |s: &str| s.trim().to_ascii_lowercase().replace('_', "-");
    let wanted = norm(name);
    PROFILES
        .iter()
        .find(|p| norm(p.name) == wanted || p.aliases.iter().any(|a| norm(a) == wanted))
}

impl Profile {
    /// Checks that a telegram starts the way this meter frames it.
    ///
    /// # Errors
    /// [`crate::error::ErrorKind::ProfileFraming`] at byte 0.
    pub fn check_framing(&self, input: &[u8]) -> crate::error::Result<()> {
        match input.first() {
            Some(&first) if !self.framing.accepts(first) => Err(crate::DecodeError::new(
                crate::error::ErrorKind::ProfileFraming {
                    profile: self.name,
                    expected: self.framing.describe(),
                    found: first,
                },
                0,
            )),
            _ => Ok(()),
        }
    }

    /// Checks that a decoded DLMS reading came in this meter's layout.
    ///
    /// # Errors
    /// [`crate::error::ErrorKind::ProfileLayout`] at `body_at`, the byte of the
    /// input where the data-notification starts.
    pub fn check_layout(&self, found: Layout, body_at: usize) -> crate::error::Result<()> {
        match self.layout {
            Some(expected) if expected != found => Err(crate::DecodeError::new(
                crate::error::ErrorKind::ProfileLayout {
                    profile: self.name,
                    expected: expected.name(),
                    found: found.name(),
                },
                body_at,
            )),
            _ => Ok(()),
        }
    }
}

impl crate::dlms::Expected for Profile {
    fn check_framing(&self, input: &[u8]) -> crate::error::Result<()> {
        Profile::check_framing(self, input)
    }

    fn check_layout(&self, found: Layout, body_at: usize) -> crate::error::Result<()> {
        Profile::check_layout(self, found, body_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for p in PROFILES {
            for n in std::iter::once(&p.name).chain(p.aliases) {
                assert!(
                    seen.insert(n.to_ascii_lowercase().replace('_', "-")),
                    "{n} twice"
                );
            }
        }
    }

    #[test]
    fn find_by_name_alias_and_mbuspico_device() {
        assert_eq!(
            find("KAIFA_MA309M_NETZNOE").map(|p| p.name),
            Some("kaifa-ma309m-netznoe")
        );
        assert_eq!(
            find("Burgenland-E450").map(|p| p.name),
            Some("burgenland-e450")
        );
        assert_eq!(find("ksm_west").map(|p| p.name), Some("ksm-west"));
        assert!(find("no-such-meter").is_none());
    }

    #[test]
    fn framing_check() {
        let wn = find("wienernetze-im350").unwrap();
        assert!(wn.check_framing(&[0x7E, 0xA0]).is_ok());
        assert!(wn.check_framing(&[0xDB]).is_ok());
        let e = wn.check_framing(&[0x68, 0xFA]).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.to_string().contains("HDLC (0x7e)"), "{e}");
    }
}
