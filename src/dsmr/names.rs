//! The code table: names for OBIS codes, overriding or extending the default
//! names of [`super::reading`].
//!
//! An entry's code is either an OBIS code as a telegram writes it
//! (`1-0:1.8.1`) or a regular expression that must match the whole code
//! (`(\d)-1:24.2.1`: the gas meter on any M-Bus channel), as the MicroPython
//! P1 meter's `codetable` maps codes to MQTT topics. An exact code wins; of
//! the patterns, the first in the table's order that matches. Names are kept
//! as given (`total/gas_meter` names two topic levels).

use std::collections::HashMap;

/// A code table (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Names {
    exact: HashMap<String, String>,
    patterns: Vec<(regex_lite::Regex, String)>,
    entries: Vec<(String, String)>,
}

/// An entry whose code is neither an OBIS code nor a valid pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    /// The code as given.
    pub code: String,
    /// Why the pattern does not compile.
    pub reason: String,
}

impl std::fmt::Display for BadEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "code table entry {:?}: neither an OBIS code \"A-B:C.D.E\" nor a valid pattern ({})",
            self.code, self.reason
        )
    }
}

impl std::error::Error for BadEntry {}

/// Whether `code` is an OBIS code as telegrams write it: `A-B:C.D.E`, digits.
fn is_code(code: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let Some((a, rest)) = code.split_once('-') else {
        return false;
    };
    let Some((b, rest)) = rest.split_once(':') else {
        return false;
    };
    let cde: Vec<&str> = rest.split('.').collect();
    digits(a) && digits(b) && cde.len() == 3 && cde.iter().all(|s| digits(s))
}

impl Names {
    /// The table of `entries` (code or pattern, name), in their order.
    ///
    /// # Errors
    /// The first entry whose code is not an OBIS code and does not compile
    /// as a regular expression.
    pub fn new(entries: Vec<(String, String)>) -> Result<Self, BadEntry> {
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (code, name) in &entries {
            if is_code(code) {
                exact.entry(code.clone()).or_insert_with(|| name.clone());
            } else if code
                .bytes()
                .all(|b| b.is_ascii_digit() || b"-:.".contains(&b))
            {
                // Meant as a code, not a pattern: a typo such as `1-0:1.8`.
                return Err(BadEntry {
                    code: code.clone(),
                    reason: "an OBIS code has five groups, A-B:C.D.E".to_owned(),
                });
            } else {
                let re =
                    regex_lite::Regex::new(&format!("^(?:{code})$")).map_err(|e| BadEntry {
                        code: code.clone(),
                        reason: e.to_string(),
                    })?;
                patterns.push((re, name.clone()));
            }
        }
        Ok(Names {
            exact,
            patterns,
            entries,
        })
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of `code` (an OBIS code as the telegram writes it), if the table has one.
    pub fn get(&self, code: &str) -> Option<&str> {
        if let Some(name) = self.exact.get(code) {
            return Some(name);
        }
        self.patterns
            .iter()
            .find(|(re, _)| re.is_match(code))
            .map(|(_, name)| name.as_str())
    }

    /// The entries as given, in their order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &str)]) -> Names {
        Names::new(
            entries
                .iter()
                .map(|(c, n)| ((*c).to_owned(), (*n).to_owned()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn exact_codes_then_patterns_in_order() {
        // The MicroPython P1 meter's code table form: any A group, channel 1.
        let seed = table(&[(r"(\d)-1:24.2.1", "total/gas_meter")]);
        assert_eq!(seed.get("0-1:24.2.1"), Some("total/gas_meter"));
        assert_eq!(seed.get("0-2:24.2.1"), None);
        assert_eq!(seed.get("10-1:24.2.1"), None); // the whole code must match
        let names = table(&[
            (r"0-(\d):24.2.1", "gas_any_channel"),
            ("0-2:24.2.1", "exact_gas_2"),
            (r"1-0:(1|2)\.8\.\d", "tariffs"),
            (r"1-0:1\.8\.1", "never: the pattern before matches first"),
        ]);
        assert_eq!(names.get("0-2:24.2.1"), Some("exact_gas_2"));
        assert_eq!(names.get("0-3:24.2.1"), Some("gas_any_channel"));
        assert_eq!(names.get("1-0:1.8.1"), Some("tariffs"));
        assert_eq!(names.get("1-0:3.8.1"), None);
        assert_eq!(names.entries().len(), 4);
    }

    #[test]
    fn codes_are_told_from_patterns() {
        assert!(is_code("1-0:1.8.1"));
        assert!(is_code("0-96:24.2.1"));
        assert!(!is_code(r"(\d)-1:24.2.1"));
        assert!(!is_code("1.0:1-8.1"));
        assert!(!is_code("1-0:1.8"));
        assert!(!is_code("1-0:1.8.1.255"));
    }

    #[test]
    fn a_short_code_is_a_typo_not_a_pattern() {
        let e = Names::new(vec![("1-0:1.8".into(), "x".into())]).unwrap_err();
        assert_eq!(e.code, "1-0:1.8");
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_it() {
        let e = Names::new(vec![("(1-0".into(), "x".into())]).unwrap_err();
        assert_eq!(e.code, "(1-0");
        assert!(e
            .to_string()
            .starts_with("code table entry \"(1-0\": neither"));
    }
}
