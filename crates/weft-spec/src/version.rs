//! `agentspec_version` values (FORMAT.md section 4).

use std::fmt;

/// A released Agent Spec version, compared numerically component by component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16, pub u16, pub u16);

impl Version {
    /// 25.3.0 (legacy; every component needs more).
    pub const V25_3_0: Version = Version(25, 3, 0);
    /// 25.3.1 (legacy; every component needs more).
    pub const V25_3_1: Version = Version(25, 3, 1);
    /// 25.4.0 (pre-release; read as 25.4.1).
    pub const V25_4_0: Version = Version(25, 4, 0);
    /// 25.4.1, the first official release and the base floor.
    pub const V25_4_1: Version = Version(25, 4, 1);
    /// 25.4.2.
    pub const V25_4_2: Version = Version(25, 4, 2);
    /// 26.1.0.
    pub const V26_1_0: Version = Version(26, 1, 0);
    /// 26.1.2.
    pub const V26_1_2: Version = Version(26, 1, 2);
    /// 26.3.1, the current version.
    pub const V26_3_1: Version = Version(26, 3, 1);
    /// The newest version Weft reads and writes.
    pub const CURRENT: Version = Version::V26_3_1;

    /// Every version pyagentspec 26.3.1 knows, oldest first.
    pub const KNOWN: [Version; 8] = [
        Version::V25_3_0,
        Version::V25_3_1,
        Version::V25_4_0,
        Version::V25_4_1,
        Version::V25_4_2,
        Version::V26_1_0,
        Version::V26_1_2,
        Version::V26_3_1,
    ];

    /// Parses one of the known version strings; anything else is `None`.
    pub fn parse(text: &str) -> Option<Version> {
        Version::KNOWN.into_iter().find(|v| v.to_string() == text)
    }

    /// A version between released ones (pyagentspec's development builds stamp documents with
    /// values such as 26.1.1 and 26.2.0): `Some((stamped, nearest lower known version))` for a
    /// numeric `X.Y.Z` that is not known and lies between the first and the newest known
    /// version; `None` for anything else (a known version, one above the newest, not numeric).
    pub fn between_releases(text: &str) -> Option<(Version, Version)> {
        let mut parts = text.split('.');
        let mut next = || -> Option<u16> {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let v = Version(next()?, next()?, next()?);
        if parts.next().is_some() || Version::KNOWN.contains(&v) || v > Version::CURRENT || v < Version::KNOWN[0] {
            return None;
        }
        let lower = Version::KNOWN.into_iter().rev().find(|k| *k < v)?;
        Some((v, lower))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn versions_between_releases_map_to_the_nearest_lower_one() {
        assert_eq!(Version::between_releases("26.2.0"), Some((Version(26, 2, 0), Version::V26_1_2)));
        assert_eq!(Version::between_releases("26.1.1"), Some((Version(26, 1, 1), Version::V26_1_0)));
        assert_eq!(Version::between_releases("25.4.5"), Some((Version(25, 4, 5), Version::V25_4_2)));
        for text in ["26.3.1", "26.3.2", "99.0.0", "25.2.0", "26.2", "26.2.0.1", "26.2.x", "", "26..0", "+26.2.0"] {
            assert_eq!(Version::between_releases(text), None, "{text}");
        }
    }
}
