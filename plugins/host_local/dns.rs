//! `ipam.resolvConf`: a resolv.conf-style file turned into the result's `dns` (as the reference's
//! plugins/ipam/host-local/dns.go): `nameserver` adds one server, `domain` sets the domain (last one
//! wins), `search` and `options` add all their words; lines starting with `#` or `;` are comments.

use std::path::Path;

use cni_core::{CniError, CniResult, Dns};

/// Bigger resolv.conf files are refused rather than read into memory.
const MAX_SIZE: u64 = 64 * 1024;

pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(key), Some(first)) = (words.next(), words.next()) else {
            continue;
        };
        match key {
            "nameserver" => dns.nameservers.push(first.to_owned()),
            "domain" => dns.domain = Some(first.to_owned()),
            "search" => dns
                .search
                .extend(std::iter::once(first).chain(words).map(str::to_owned)),
            "options" => dns
                .options
                .extend(std::iter::once(first).chain(words).map(str::to_owned)),
            _ => {}
        }
    }
    dns
}

/// O_NONBLOCK, so that a FIFO named as resolvConf cannot hang the call (its value on Linux, except
/// on MIPS).
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const O_NONBLOCK: i32 = 0o200;
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const O_NONBLOCK: i32 = 0o4000;

pub(crate) fn load(path: &Path) -> CniResult<Dns> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| {
        CniError::invalid_config(format!(
            "ipam.resolvConf: cannot read {}: {e}; point it at a readable resolv.conf-style file or remove the key",
            path.display()
        ))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(fail)?;
    if !file.metadata().map_err(fail)?.is_file() {
        return Err(CniError::invalid_config(format!(
            "ipam.resolvConf: {} is not a regular file; point it at a resolv.conf-style file",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(MAX_SIZE + 1).read_to_string(&mut text).map_err(fail)?;
    if text.len() as u64 > MAX_SIZE {
        return Err(CniError::invalid_config(format!(
            "ipam.resolvConf: {} is larger than {} KiB; is it really a resolv.conf?",
            path.display(),
            MAX_SIZE / 1024
        )));
    }
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        let d = parse(
            "# comment\n; also\nnameserver 1.1.1.1\nnameserver 8.8.8.8 ignored\ndomain first\ndomain example\nsearch a.example b.example\noptions ndots:5 timeout:2\nbogus x\nnameserver\n",
        );
        assert_eq!(d.nameservers, ["1.1.1.1", "8.8.8.8"]);
        assert_eq!(d.domain.as_deref(), Some("example"));
        assert_eq!(d.search, ["a.example", "b.example"]);
        assert_eq!(d.options, ["ndots:5", "timeout:2"]);
        assert!(parse("").is_empty());
    }
}
