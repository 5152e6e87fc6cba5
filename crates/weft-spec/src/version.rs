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
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}
