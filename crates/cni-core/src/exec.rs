
#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegate::delegate_with;
    use crate::env::{Command, Env};
    use crate::version::Version;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Fake {
        seen: RefCell<Vec<(PathBuf, Vec<(OsString, OsString)>)>>,
        reply: ExecOutput,
    }

    impl Exec for Fake {
        fn exec(&self, exe: &Path, env: &[(OsString, OsString)], _: &[u8]) -> std::io::Result<ExecOutput> {
            self.seen.borrow_mut().push((exe.to_path_buf(), env.to_vec()));
            Ok(self.reply.clone())
        }
        fn find(&self, name: &str, _: &[PathBuf]) -> CniResult<PathBuf> {
            Ok(PathBuf::from("/fake").join(name))
        }
    }

    fn env() -> Env {
        Env {
            command: Command::Add,
            container_id: "c1".into(),
            netns: "/n".into(),
            ifname: "eth0".into(),
            args: "A=1".into(),
            path: vec![PathBuf::from("/a"), PathBuf::from("/b")],
        }
    }

    #[test]
    fn delegation_passes_the_request_environment() {
        let fake = Fake {
            reply: ExecOutput {
                success: true,
                stdout: br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#.to_vec(),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = delegate_with(&fake, "host-local", Command::Del, &env(), b"{}", Version::V1_0_0).unwrap();
        assert!(r.is_none());
        let seen = fake.seen.borrow();
        let (exe, vars) = &seen[0];
        assert_eq!(exe, Path::new("/fake/host-local"));
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_str().unwrap().to_string());
        assert_eq!(get("CNI_COMMAND").as_deref(), Some("DEL"));
        assert_eq!(get("CNI_CONTAINERID").as_deref(), Some("c1"));
        assert_eq!(get("CNI_ARGS").as_deref(), Some("A=1"));
        assert_eq!(get("CNI_PATH").as_deref(), Some("/a:/b"));
        assert_eq!(vars.iter().filter(|(n, _)| n == "CNI_COMMAND").count(), 1);
    }

    #[test]
    fn error_replies_are_decoded_or_quoted() {
        let out = ExecOutput {
            success: false,
            status: "exit status: 1".into(),
            stdout: br#"{"code":11,"msg":"busy","details":"try later"}"#.to_vec(),
            stderr: vec![],
        };
        let e = decode_error("x", "ADD", &out);
        assert_eq!((e.code, e.msg.as_str(), e.details.as_deref()), (11, "busy", Some("try later")));
        let out = ExecOutput {
            stdout: b"  ".to_vec(),
            stderr: b"panic: boom".to_vec(),
            ..out
        };
        let e = decode_error("x", "ADD", &out);
        assert_eq!(e.code, code::DELEGATE_FAILED);
        assert!(e.details.unwrap().contains("panic: boom"));
    }
}
