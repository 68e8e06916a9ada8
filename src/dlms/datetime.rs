//! COSEM date-time (IEC 62056-6-2 §4.1.6.1, "date-time" 12 octets).
//!
//! ```text
//! year(2) month day day-of-week hour minute second hundredths deviation(2) clock-status
//! ```
//! Year 0xFFFF and 0xFF in the other fields mean "not specified". The deviation is
//! signed minutes with **UTC = local time + deviation** (CEST is −120), 0x8000 when
//! not specified. Clock-status bit 7 = daylight saving active, bit 1 = doubtful,
//! bit 0 = invalid.

/// Loxone's epoch, 2009-01-01, as days since 1970-01-01.
const LOXONE_EPOCH_DAYS: i64 = 14245;

/// A decoded date-time; fields are as sent (0xFF / 0xFFFF = not specified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Year, 0xFFFF when not specified.
    pub year: u16,
    /// Month 1–12 (0xFD/0xFE daylight saving end/begin, 0xFF not specified).
    pub month: u8,
    /// Day of month 1–31.
    pub day: u8,
    /// Day of week 1 (Monday) – 7, 0xFF not specified.
    pub weekday: u8,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–59.
    pub second: u8,
    /// Hundredths of a second 0–99, 0xFF not specified.
    pub hundredths: u8,
    /// Minutes, UTC = local + deviation; `None` when not specified (0x8000).
    pub deviation: Option<i16>,
    /// Clock status bits.
    pub clock_status: u8,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil` algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    /// Decodes the 12 octets.
    pub fn from_bytes(b: &[u8; 12]) -> Self {
        let [y0, y1, month, day, weekday, hour, minute, second, hundredths, d0, d1, clock_status] =
            *b;
        let deviation = match i16::from_be_bytes([d0, d1]) {
            i16::MIN => None,
            d => Some(d),
        };
        DateTime {
            year: u16::from_be_bytes([y0, y1]),
            month,
            day,
            weekday,
            hour,
            minute,
            second,
            hundredths,
            deviation,
            clock_status,
        }
    }

    /// Encodes the 12 octets (the inverse of [`DateTime::from_bytes`]).
    pub fn to_bytes(&self) -> [u8; 12] {
        let [y0, y1] = self.year.to_be_bytes();
        let [d0, d1] = self.deviation.unwrap_or(i16::MIN).to_be_bytes();
        [
            y0,
            y1,
            self.month,
            self.day,
            self.weekday,
            self.hour,
            self.minute,
            self.second,
            self.hundredths,
            d0,
            d1,
            self.clock_status,
        ]
    }

    /// A complete local date-time with its UTC offset (minutes east of UTC) and
    /// the day of week computed; clock status 0x80 (daylight saving) when
    /// `dst`, else 0x00.
    pub fn local(
        (year, month, day): (u16, u8, u8),
        (hour, minute, second): (u8, u8, u8),
        utc_offset_minutes: i16,
        dst: bool,
    ) -> Self {
        let days = days_from_civil(year.into(), month.into(), day.into());
        // 1970-01-01 was a Thursday (4); COSEM counts Monday = 1 … Sunday = 7.
        let weekday = ((days + 3).rem_euclid(7) + 1) as u8;
        DateTime {
            year,
            month,
            day,
            weekday,
            hour,
            minute,
            second,
            hundredths: 0,
            deviation: Some(-utc_offset_minutes),
            clock_status: if dst { 0x80 } else { 0x00 },
        }
    }

    /// Whether year, month, day, hour, minute and second are all specified and in range.
    pub fn is_complete(&self) -> bool {
        self.year <= 9999
            && (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }

    /// Whether the "invalid value" clock-status bit is set.
    pub fn is_invalid(&self) -> bool {
        self.clock_status != 0xFF && self.clock_status & 0x01 != 0
    }

    /// The offset from UTC of the local time in minutes (−deviation), if specified.
    pub fn utc_offset_minutes(&self) -> Option<i32> {
        self.deviation.map(|d| -i32::from(d))
    }

    /// ISO 8601 local time with the meter's UTC offset, e.g.
    /// `2021-09-27T09:47:15+02:00`; without offset when the meter does not send
    /// one; hundredths as a fraction when sent and non-zero. `None` when incomplete.
    pub fn iso8601(&self) -> Option<String> {
        if !self.is_complete() {
            return None;
        }
        // Written digit by digit: this runs for every reading.
        fn two(s: &mut String, n: u32) {
            s.push(char::from(b'0' + (n / 10 % 10) as u8));
            s.push(char::from(b'0' + (n % 10) as u8));
        }
        let mut s = String::with_capacity(28);
        let year = u32::from(self.year);
        two(&mut s, year / 100);
        two(&mut s, year);
        for (sep, n) in [
            ('-', self.month),
            ('-', self.day),
            ('T', self.hour),
            (':', self.minute),
            (':', self.second),
        ] {
            s.push(sep);
            two(&mut s, n.into());
        }
        if self.hundredths != 0 && self.hundredths < 100 {
            s.push('.');
            two(&mut s, self.hundredths.into());
        }
        if let Some(offset) = self.utc_offset_minutes() {
            s.push(if offset < 0 { '-' } else { '+' });
            let abs = offset.unsigned_abs();
            two(&mut s, abs / 60);
            s.push(':');
            two(&mut s, abs % 60);
        }
        Some(s)
    }

    /// Seconds of local wall-clock time since 1970-01-01 00:00 (local), `None` when incomplete.
    pub fn local_epoch_seconds(&self) -> Option<i64> {
        if !self.is_complete() {
            return None;
        }
        let days = days_from_civil(self.year.into(), self.month.into(), self.day.into());
        Some(
            days * 86_400
                + i64::from(self.hour) * 3600
                + i64::from(self.minute) * 60
                + i64::from(self.second),
        )
    }

    /// Seconds since 1970-01-01 00:00 UTC, when the offset is known.
    pub fn unix_seconds(&self) -> Option<i64> {
        let local = self.local_epoch_seconds()?;
        Some(local - i64::from(self.utc_offset_minutes()?) * 60)
    }

    /// Loxone time: local wall-clock seconds since 2009-01-01 00:00, the value
    /// MBusPico sends as `lxTimestamp` (Loxone knowledge base "Times"; LoxBerry
    /// `epoch2lox`).
    pub fn loxone_seconds(&self) -> Option<i64> {
        Some(self.local_epoch_seconds()? - LOXONE_EPOCH_DAYS * 86_400)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn netz_noe_example() {
        // 2021-09-27 09:47:15, deviation -120 (CEST), DST bit set.
        let dt = DateTime::from_bytes(&[
            0x07, 0xE5, 0x09, 0x1B, 0x01, 0x09, 0x2F, 0x0F, 0x00, 0xFF, 0x88, 0x80,
        ]);
        assert_eq!(dt.iso8601().unwrap(), "2021-09-27T09:47:15+02:00");
        assert_eq!(dt.loxone_seconds(), Some(401_968_035));
        assert_eq!(dt.unix_seconds(), Some(1_632_728_835));
    }

    #[test]
    fn unspecified_fields() {
        let dt = DateTime::from_bytes(&[
            0x07, 0xE7, 0x03, 0x1C, 0x02, 0x13, 0x0B, 0x14, 0xFF, 0x80, 0x00, 0x00,
        ]);
        assert_eq!(dt.deviation, None);
        assert_eq!(dt.iso8601().unwrap(), "2023-03-28T19:11:20");
        assert_eq!(dt.unix_seconds(), None);
        let none = DateTime::from_bytes(&[0xFF; 12]);
        assert_eq!(none.iso8601(), None);
        assert_eq!(none.loxone_seconds(), None);
    }

    #[test]
    fn encode_round_trip_and_weekday() {
        let dt = DateTime::local((2021, 9, 27), (9, 47, 15), 120, true);
        assert_eq!(
            dt.to_bytes(),
            [0x07, 0xE5, 0x09, 0x1B, 0x01, 0x09, 0x2F, 0x0F, 0x00, 0xFF, 0x88, 0x80]
        );
        assert_eq!(DateTime::from_bytes(&dt.to_bytes()), dt);
        assert_eq!(
            DateTime::local((2024, 11, 17), (0, 0, 0), 60, false).weekday,
            7
        );
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2009, 1, 1), LOXONE_EPOCH_DAYS);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
