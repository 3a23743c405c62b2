//! Byte sizes as people write them: `"256 MiB"`, `"1.5 GB"`, `1048576`.
//!
//! Used by the config file, trace lines (`trim cpu 64 MiB`) and CLI budget lists.

use std::fmt;
use std::str::FromStr;

/// A number of bytes, parsed from an integer or a string with a unit
/// (B, KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024).
///
/// ```
/// use texcache::ByteSize;
/// assert_eq!("256 MiB".parse::<ByteSize>().unwrap().0, 256 << 20);
/// assert_eq!("1.5KB".parse::<ByteSize>().unwrap().0, 1500);
/// assert_eq!("42".parse::<ByteSize>().unwrap().0, 42);
/// assert!("12 parsecs".parse::<ByteSize>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KIB", 1 << 10),
    ("MIB", 1 << 20),
    ("GIB", 1 << 30),
    ("TIB", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.ends_with('%') {
            return Err(format!(
                "`{s}`: a percentage is accepted only for cpu.budget; this size is in bytes \
                 (a GPU budget too: wgpu does not tell an adapter's memory portably)"
            ));
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = (&s[..split], s[split..].trim());
        if num.is_empty() {
            return Err(format!(
                "`{s}` is not a size (expected e.g. 1048576, \"64 MiB\", \"2 GB\")"
            ));
        }
        let mult = if unit.is_empty() {
            1
        } else {
            let up = unit.to_ascii_uppercase();
            UNITS.iter().find(|(u, _)| *u == up).map(|(_, m)| *m).ok_or_else(|| {
                    format!("`{s}`: unknown unit `{unit}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)")
                })?
        };
        let bytes = if let Ok(n) = num.parse::<u64>() {
            n.checked_mul(mult)
        } else {
            let f: f64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
            let b = (f * mult as f64).round();
            (b.is_finite() && b >= 0.0 && b < u64::MAX as f64).then_some(b as u64)
        };
        bytes
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// Binary units with up to one decimal: `256.0 MiB`, `512 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b < 1024 {
            return write!(f, "{b} B");
        }
        let units = ["KiB", "MiB", "GiB", "TiB"];
        let mut v = b as f64 / 1024.0;
        let mut i = 0;
        while v >= 1024.0 && i < units.len() - 1 {
            v /= 1024.0;
            i += 1;
        }
        write!(f, "{v:.1} {}", units[i])
    }
}

impl ByteSize {
    /// The size as a person writes it in a config file: the largest binary unit that holds it
    /// exactly (`"256 MiB"`, `"1536 KiB"`), else bytes (`"1000001 B"`). It parses back to
    /// the same number.
    ///
    /// ```
    /// use texcache::ByteSize;
    /// assert_eq!(ByteSize(256 << 20).exact(), "256 MiB");
    /// assert_eq!(ByteSize(1536 << 10).exact(), "1536 KiB");
    /// assert_eq!(ByteSize(1_000_001).exact(), "1000001 B");
    /// assert_eq!(ByteSize(0).exact(), "0 B");
    /// ```
    pub fn exact(self) -> String {
        let b = self.0;
        for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if b != 0 && b.is_multiple_of(1u64 << shift) {
                return format!("{} {unit}", b >> shift);
            }
        }
        format!("{b} B")
    }

    /// A warning for a size whose unit is not spelled as this crate documents it: units are
    /// read case-insensitively, so `"64 Mib"` is 64 MiB, but `Mib` is usually a mebibit and
    /// `mb` a millibit, and the reader deserves to be told which one was meant. `None` for a
    /// plain number or a documented spelling (`B`, `kB`/`KB`, `MB`, `GB`, `TB`, `KiB`, `MiB`,
    /// `GiB`, `TiB`), and for what does not parse (the parse error says why).
    ///
    /// ```
    /// use texcache::ByteSize;
    /// assert!(ByteSize::spelling_warning("64 MiB").is_none());
    /// assert!(ByteSize::spelling_warning("64 Mib").unwrap().contains("64 MiB"));
    /// ```
    pub fn spelling_warning(s: &str) -> Option<String> {
        let t = s.trim();
        let bytes = t.parse::<ByteSize>().ok()?;
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, unit) = (&t[..split], t[split..].trim());
        const WRITTEN: &[&str] = &[
            "B", "kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB",
        ];
        if WRITTEN.contains(&unit) {
            return None;
        }
        let up = unit.to_ascii_uppercase();
        let meant = WRITTEN
            .iter()
            .find(|w| w.to_ascii_uppercase() == up)
            .copied()
            .unwrap_or("B");
        Some(format!(
            "`{t}` is read as {num} {meant} ({} bytes): units are case-insensitive here, but              `{unit}` usually means something else (a `b` is a bit); write `{num} {meant}`",
            bytes.0
        ))
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    /// What a budget reads, refusing a percentage (with [`ByteSize`]'s own words for why).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Budget::deserialize(d)? {
            Budget(bytes, None) => Ok(ByteSize(bytes)),
            Budget(_, Some(p)) => Err(serde::de::Error::custom(
                format!("{p}%").parse::<ByteSize>().unwrap_err(),
            )),
        }
    }
}

/// As [`ByteSize::exact`] writes it: `"512 MiB"`.
impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.exact())
    }
}

/// The CPU tier's budget: bytes, or a percentage of the memory this process may use
/// ([`crate::observe::pressure::memory_limit`]), which [`crate::Config`] resolves to bytes when a file
/// is read, and again in [`crate::Cache::new`] and [`crate::Cache::reload_config`].
///
/// Field 0 is the bytes (0 for a percentage not resolved yet), field 1 the percentage it came
/// from, if any.
///
/// ```
/// use texcache::Budget;
/// assert_eq!("64 MiB".parse::<Budget>().unwrap(), Budget(64 << 20, None));
/// let quarter: Budget = "25%".parse().unwrap();
/// assert_eq!(quarter.1, Some(25.0));
/// assert_eq!(quarter.resolved(1 << 30).0, 256 << 20);
/// assert!("250%".parse::<Budget>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budget(pub u64, pub Option<f64>);

impl Budget {
    /// With a percentage's bytes worked out of `limit`, the memory this process may use.
    pub fn resolved(self, limit: u64) -> Budget {
        match self.1 {
            Some(p) => Budget((limit as f64 * p / 100.0).round() as u64, Some(p)),
            None => self,
        }
    }
}

impl From<ByteSize> for Budget {
    fn from(b: ByteSize) -> Budget {
        Budget(b.0, None)
    }
}

impl FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let Some(num) = t.strip_suffix('%') else {
            return t.parse::<ByteSize>().map(Budget::from);
        };
        match num.trim().parse::<f64>() {
            Ok(p) if p > 0.0 && p <= 100.0 => Ok(Budget(0, Some(p))),
            _ => Err(format!(
                "`{t}`: a percentage of the memory this process may use must be above 0% and at \
                 most 100%"
            )),
        }
    }
}

impl fmt::Display for Budget {
    /// `256.0 MiB`, or `25% (4.0 GiB)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(p) => write!(f, "{p}% ({})", ByteSize(self.0)),
            None => ByteSize(self.0).fmt(f),
        }
    }
}

/// Reads an integer (bytes), a size string (`"256 MiB"`) or a percentage (`"25%"`).
impl<'de> serde::Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Budget;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size (an integer, or a string such as \"256 MiB\") or a percentage such as \"25%\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Budget, E> {
                Ok(Budget(v, None))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Budget, E> {
                u64::try_from(v)
                    .map(|v| Budget(v, None))
                    .map_err(|_| E::custom("a byte size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Budget, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            Some(p) => s.serialize_str(&format!("{p}%")),
            None => s.serialize_str(&ByteSize(self.0).exact()),
        }
    }
}
