//! `inspect --format` Go templates on containers, images and volumes, as docker evaluates them.

use crate::support::ContainerEnv;

#[test]
fn inspect_format_evaluates_go_templates() {
    let Some(env) = ContainerEnv::new() else { return };
    let name = berth_testsupport::unique_name("fmt");
    let vol = berth_testsupport::unique_name("fmtvol");
    env.ok(&["volume", "create", "--label", "team=web", &vol]);
    env.ok(&[
        "container",
        "create",
        "--name",
        &name,
        "-v",
        &format!("{vol}:/data"),
        "--tmpfs",
        "/scratch",
        "-l",
        "tier=front",
        "bb",
        "echo",
        "a b",
    ]);
    let f = |t: &str| env.ok(&["container", "inspect", "-f", t, &name]).trim_end().to_string();
    assert_eq!(f("{{json .Config.Cmd}}"), r#"["echo","a b"]"#);
    assert_eq!(f(r#"{{index .Config.Labels "tier"}}"#), "front");
    assert_eq!(
        f("{{range .Mounts}}{{.Destination}}={{.Type}} {{end}}"),
        "/data=volume /scratch=tmpfs"
    );
    assert_eq!(f(r#"{{if eq .State.Status "created"}}new{{else}}old{{end}}"#), "new");
    assert_eq!(f(r#"{{join .Config.Cmd "|"}} {{upper .State.Status}}"#), "echo|a b CREATED");
    let image_id = env.ok(&["image", "inspect", "-f", "{{.Id}}", "bb"]);
    assert!(image_id.trim().starts_with("sha256:"), "{image_id}");
    let labels = env.ok(&["volume", "inspect", "--format", "{{.Name}} {{json .Labels}}", &vol]);
    assert_eq!(labels.trim(), format!(r#"{vol} {{"team":"web"}}"#));
    // A broken template is one clear error, not a crash.
    let out = env.run(&["container", "inspect", "-f", "{{.State", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --format template"));
    env.ok(&["container", "rm", &name]);
    env.ok(&["volume", "rm", &vol]);
}
