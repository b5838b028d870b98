//! Network configuration parsing (`NetConf::parse`) and every accessor on the parsed config, the
//! prevResult above all: any bytes must give a config or a coded error, never a panic.
#![no_main]

use cni_core::NetConf;
use cni_core::config::valid_identifier;
use cni_core::error::code;
use libfuzzer_sys::fuzz_target;
use sandbox_cni_fuzz::{PARSE_CODES, check_conversions, check_parse_error};

fuzz_target!(|data: &[u8]| {
    let conf = match NetConf::parse(data) {
        Ok(c) => c,
        Err(e) => {
            return check_parse_error(
                &e,
                &[
                    code::INCOMPATIBLE_VERSION,
                    code::DECODE_FAILURE,
                    code::INVALID_CONFIG,
                ],
            );
        }
    };
    assert!(
        valid_identifier(&conf.name),
        "accepted network name {:?}",
        conf.name
    );
    match conf.prev_result() {
        Ok(Some(r)) => {
            check_conversions(&r);
            // The reply to this request is in the config's own version.
            if let Err(e) = r.to_json(conf.version) {
                assert_eq!(e.code, code::INCOMPATIBLE_VERSION, "{}", e.msg);
            }
        }
        Ok(None) => {}
        Err(e) => check_parse_error(&e, &[code::INCOMPATIBLE_VERSION, code::DECODE_FAILURE]),
    }
    for r in [
        conf.dns().map(|_| ()),
        conf.runtime_config().map(|_| ()),
        conf.ipam_type().map(|_| ()),
        conf.gc_attachments().map(|_| ()),
    ] {
        if let Err(e) = r {
            check_parse_error(&e, &PARSE_CODES);
        }
    }
    // The typed readers on every top-level key, whatever its type.
    let f = conf.fields();
    for key in conf.raw.keys() {
        for r in [
            f.bool(key).map(|_| ()),
            f.string(key).map(|_| ()),
            f.int(key, -5, 65535).map(|_| ()),
            f.object(key).map(|_| ()),
            f.objects(key).map(|_| ()),
            f.strings(key).map(|_| ()),
            f.cidr(key).map(|_| ()),
            f.ip(key).map(|_| ()),
            f.int_ci(key, 0, i64::MAX).map(|_| ()),
            f.objects_ci(key).map(|_| ()),
        ] {
            if let Err(e) = r {
                check_parse_error(&e, &[code::INVALID_CONFIG]);
                assert!(
                    e.msg.contains(key.as_str()) || key.is_empty(),
                    "message must name the key {key:?}: {}",
                    e.msg
                );
            }
        }
    }
});
