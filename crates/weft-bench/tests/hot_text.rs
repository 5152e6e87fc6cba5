//! `scripts/hot-text.ld`, the layout of the release binaries' hot code, is well formed and
//! links: CI builds in debug, where the script is not used, so a broken script would otherwise
//! first fail a user's `cargo build --release`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/hot-text.ld")
}

/// The patterns of the script's `.text.hot` section, checked line by line.
fn patterns(text: &str) -> Vec<String> {
    let body = text
        .split_once(".text.hot : {")
        .and_then(|(_, rest)| rest.split_once("\n  }"))
        .map(|(body, _)| body)
        .expect("the script has a `.text.hot : { ... }` section");
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let hot = line
                .strip_prefix("    *(.text.*")
                .and_then(|l| l.strip_suffix(')'))
                .unwrap_or_else(|| panic!("not a section pattern: {line}"));
            assert!(
                hot.chars().all(|c| c.is_ascii_alphanumeric() || "_$.*".contains(c)),
                "a pattern holds only symbol characters and `*`: {line}"
            );
            assert!(!has_legacy_hash(hot), "hashes are left out: {line}");
            hot.to_owned()
        })
        .collect()
}

/// Whether a legacy-mangled name ends with its hash (`17h` and 16 hex digits, then `E`).
fn has_legacy_hash(symbol: &str) -> bool {
    let Some(rest) = symbol.strip_suffix('E') else { return false };
    rest.len() > 19 && rest[rest.len() - 19..].starts_with("17h") && rest[rest.len() - 16..].chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn the_script_lists_hash_free_patterns_and_is_inserted_before_the_text() {
    let text = std::fs::read_to_string(script()).unwrap();
    let patterns = patterns(&text);
    assert!(patterns.len() > 500, "{} patterns", patterns.len());
    assert!(patterns.iter().any(|p| p.contains("9weft_exec")), "the engine's functions are listed");
    assert!(text.trim_end().ends_with("INSERT BEFORE .text;"), "the default layout is kept, not replaced");
    let unique: std::collections::BTreeSet<&String> = patterns.iter().collect();
    assert_eq!(unique.len(), patterns.len(), "no pattern twice");
}

/// Links a small program with the script, as the release build does, and checks that the
/// program runs and that its text has a `.text.hot` section: the patterns match the symbols of
/// this toolchain's standard library, so they are free of its hashes.
#[cfg(target_os = "linux")]
#[test]
fn a_program_linked_with_the_script_runs_with_its_hot_section() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hot_text");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("hello.rs");
    std::fs::write(&source, "fn main() { println!(\"{}\", format!(\"hot {}\", 21 * 2)); }\n").unwrap();
    let binary = dir.join("hello");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-O")
        .arg("-C")
        .arg(format!("link-arg=-Wl,-T,{}", script().display()))
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("rustc runs");
    assert!(out.status.success(), "linking with the script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&binary).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hot 42\n");
    let sections = elf_sections(&std::fs::read(&binary).unwrap());
    assert!(sections.iter().any(|s| s == ".text.hot"), "sections: {sections:?}");
    let hot = sections.iter().position(|s| s == ".text.hot").unwrap();
    assert_eq!(sections.get(hot + 1).map(String::as_str), Some(".text"), "the hot code comes just before the rest");
}

/// The section names of a 64-bit little-endian ELF file.
#[cfg(target_os = "linux")]
fn elf_sections(elf: &[u8]) -> Vec<String> {
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().expect("a field inside the file")) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().expect("a field inside the file")) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().expect("a field inside the file")) as usize;
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF file");
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .map(|i| {
            let name = strtab + u32_at(header(i));
            let end = elf[name..].iter().position(|&b| b == 0).expect("a NUL-terminated section name");
            String::from_utf8_lossy(&elf[name..name + end]).into_owned()
        })
        .collect()
}
