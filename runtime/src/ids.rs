//! Ids: random 64-hex ids (containers, anonymous volumes, execs) and the check for one. A leaf.

/// 64 hex digits from the kernel's random source.
pub fn random_id() -> Result<String, std::io::Error> {
    let mut buf = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut buf)?;
    Ok(hex::encode(buf))
}

/// Whether `name` (a directory in `containers/`) is a container id: 64 lowercase hex digits.
pub fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
