use super::*;
use crate::host::probe::good_agent_host;

fn input<'a>(profile: Profile, extra: &'a [String]) -> FlagInput<'a> {
    FlagInput {
        profile,
        k3s_data_dir: Path::new("/d/k3s"),
        kubeconfig: Path::new("/d/kubeconfig.yaml"),
        version: K3sVersion::parse("k3s version v1.30.4+k3s1 (abc)"),
        overlay_usable: false,
        cgroups_usable: true,
        default_node_name: "box",
        extra,
        force: false,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn control_plane_flags_disable_everything_that_needs_a_node() {
    let cmd = build_k3s_args(&input(Profile::ControlPlane, &[])).unwrap();
    assert_eq!(
        cmd.args,
        strings(&[
            "server",
            "--disable-agent",
            "--flannel-backend=none",
            "--disable-network-policy",
            "--disable-cloud-controller",
            "--disable-kube-proxy",
            "--disable-helm-controller",
            "--disable=traefik,servicelb,metrics-server,local-storage,coredns",
            "--bind-address=127.0.0.1",
            "--https-listen-port=6443",
            "--data-dir=/d/k3s",
            "--write-kubeconfig=/d/kubeconfig.yaml",
            "--write-kubeconfig-mode=0600",
            "--cluster-cidr=10.42.0.0/16",
            "--service-cidr=10.43.0.0/16",
        ])
    );
    assert_eq!(cmd.node_name, None);
}

#[test]
fn agent_flags_keep_flannel_off_and_tune_the_kubelet() {
    let cmd = build_k3s_args(&input(Profile::Agent, &[])).unwrap();
    let a = &cmd.args;
    assert_eq!(a[0], "server");
    assert!(!a.contains(&"--disable-agent".to_string()));
    for want in [
        "--flannel-backend=none",
        "--disable-kube-proxy",
        "--disable-network-policy",
        "--node-name=box",
        "--snapshotter=native",
        "--kubelet-arg=local-storage-capacity-isolation=false",
        "--kubelet-arg=image-gc-high-threshold=100",
        "--kubelet-arg=image-gc-low-threshold=99",
        "--kubelet-arg=fail-swap-on=false",
    ] {
        assert!(a.contains(&want.to_string()), "missing {want} in {a:?}");
    }
    assert!(!a.iter().any(|x| x.contains("cgroups-per-qos")));
    assert_eq!(cmd.node_name.as_deref(), Some("box"));
}

#[test]
fn agent_flags_follow_overlay_cgroups_and_version() {
    let mut i = input(Profile::Agent, &[]);
    i.overlay_usable = true;
    i.cgroups_usable = false;
    i.version = K3sVersion::parse("k3s version v1.24.17+k3s1 (x)");
    let a = build_k3s_args(&i).unwrap().args;
    assert!(a.contains(&"--snapshotter=overlayfs".to_string()));
    assert!(a.contains(&"--kubelet-arg=cgroups-per-qos=false".to_string()));
    assert!(a.contains(&"--kubelet-arg=enforce-node-allocatable=".to_string()));
    assert!(a.contains(&"--kubelet-arg=feature-gates=LocalStorageCapacityIsolation=false".to_string()));
    assert!(!a.contains(&"--kubelet-arg=local-storage-capacity-isolation=false".to_string()));
}

#[test]
fn extra_args_are_appended_and_override_soft_defaults() {
    let extra = strings(&[
        "--node-name",
        "worker-2",
        "--cluster-cidr=10.50.0.0/16",
        "--disable=coredns",
    ]);
    let cmd = build_k3s_args(&input(Profile::Agent, &extra)).unwrap();
    assert!(!cmd.args.contains(&"--node-name=box".to_string()));
    assert!(!cmd.args.contains(&"--cluster-cidr=10.42.0.0/16".to_string()));
    assert_eq!(&cmd.args[cmd.args.len() - 4..], extra.as_slice());
    assert_eq!(cmd.node_name.as_deref(), Some("worker-2"));
}

#[test]
fn extra_args_cannot_move_the_instance_files() {
    for bad in [
        "--data-dir=/elsewhere",
        "-d",
        "--write-kubeconfig=/x",
        "-o=/x",
        "-data-dir=/y",
    ] {
        let extra = strings(&[bad]);
        let mut i = input(Profile::ControlPlane, &extra);
        i.force = true;
        let err = build_k3s_args(&i).unwrap_err();
        if bad == "-d" {
            assert_eq!(
                err.to_string(),
                "the extra k3s argument `-d` is not allowed: k3s-sandbox sets --data-dir itself (use \
                 `k3s-sandbox up --data-dir DIR` to choose where the instance lives; the kubeconfig is \
                 always <data-dir>/kubeconfig.yaml)"
            );
        }
        assert!(matches!(err, ExtraArgError::Fixed { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("k3s-sandbox sets"), "{bad}: {err}");
    }
}

#[test]
fn guarded_flags_need_force() {
    let extra = strings(&["--flannel-backend=vxlan"]);
    let err = build_k3s_args(&input(Profile::ControlPlane, &extra)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the extra k3s argument `--flannel-backend=vxlan` replaces --flannel-backend, which \
         k3s-sandbox sets to keep k3s away from kernel networking; pass --force to replace it anyway"
    );
    let mut i = input(Profile::ControlPlane, &extra);
    i.force = true;
    let a = build_k3s_args(&i).unwrap().args;
    assert!(!a.contains(&"--flannel-backend=none".to_string()));
    assert_eq!(a.last().map(String::as_str), Some("--flannel-backend=vxlan"));
}

#[test]
fn version_parsing() {
    let v = K3sVersion::parse("k3s version v1.31.2+k3s1 (6da20424)\ngo version go1.22.8").unwrap();
    assert_eq!((v.major, v.minor, v.patch), (1, 31, 2));
    assert!(v.at_least(1, 25));
    assert!(!v.at_least(1, 32));
    assert_eq!(v.to_string(), "v1.31.2");
    assert_eq!(K3sVersion::parse("k3s version dev"), None);
    assert_eq!(K3sVersion::parse("v1.2"), None);
}

#[test]
fn profile_choice_follows_the_probes() {
    let h = good_agent_host();
    assert_eq!(choose_profile(None, &h).0, Profile::Agent);
    let mut h2 = good_agent_host();
    h2.kmsg = Err(std::io::ErrorKind::PermissionDenied.into());
    let (p, why) = choose_profile(None, &h2);
    assert_eq!(p, Profile::ControlPlane);
    assert!(why.contains("/dev/kmsg"), "{why}");
    assert_eq!(choose_profile(Some(Profile::Agent), &h2).0, Profile::Agent);
}
