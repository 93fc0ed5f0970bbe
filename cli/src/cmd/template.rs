//! `--format` Go templates as docker evaluates them (`{{range .NetworkSettings.Networks}}...`),
//! on top of the `gotmpl` text/template engine plus docker's extra functions.

use gotmpl::{Template, TemplateError, Value};

/// Renders `template` against `data` (a docker-shaped JSON object), as `docker inspect -f` does.
pub fn render(template: &str, data: &serde_json::Value) -> anyhow::Result<String> {
    let t = docker_funcs(Template::new("format"))
        .parse(template)
        .map_err(|e| anyhow::anyhow!("invalid --format template: {e}"))?;
    let value = gotmpl::to_value(data).map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    t.execute_to_string(&value).map_err(|e| anyhow::anyhow!("--format: {e}"))
}

/// Prints inspect results as docker does: a pretty JSON array by default or for `json`, else
/// one rendered template line per object.
pub fn print_inspected(
    found: &[serde_json::Value],
    format: Option<&str>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    match format {
        None | Some("json") => writeln!(out, "{}", serde_json::to_string_pretty(found)?)?,
        Some(t) => {
            for v in found {
                writeln!(out, "{}", render(t, v)?)?;
            }
        }
    }
    Ok(())
}

/// Docker's template functions (cli/templates): json, join, split, lower, upper, title,
/// truncate, pad; `table` is a no-op prefix as in `docker ps --format 'table ...'`.
fn docker_funcs(t: Template) -> Template {
    t.func("json", |args| {
        let v = args.first().map(to_json).unwrap_or(serde_json::Value::Null);
        Ok(Value::String(v.to_string().into()))
    })
    .func("join", |args| {
        let (Some(Value::List(items)), Some(sep)) = (args.first(), args.get(1)) else {
            return Err(exec("join expects a list and a separator"));
        };
        let parts: Vec<String> = items.iter().map(plain).collect();
        Ok(Value::String(parts.join(&plain(sep)).into()))
    })
    .func("split", |args| {
        let (Some(s), Some(sep)) = (args.first(), args.get(1)) else {
            return Err(exec("split expects a string and a separator"));
        };
        let parts: Vec<Value> =
            plain(s).split(&*plain(sep)).map(|p| Value::String(p.into())).collect();
        Ok(Value::List(parts.into()))
    })
    .func("lower", |args| Ok(Value::String(first(args).to_lowercase().into())))
    .func("upper", |args| Ok(Value::String(first(args).to_uppercase().into())))
    .func("title", |args| {
        let s = first(args);
        let mut c = s.chars();
        let t: String = c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default();
        Ok(Value::String(t.into()))
    })
    .func("truncate", |args| {
        let n = args.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
        Ok(Value::String(first(args).chars().take(n).collect::<String>().into()))
    })
    .func("pad", |args| {
        let l = args.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
        let r = args.get(2).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
        Ok(Value::String(format!("{}{}{}", " ".repeat(l), first(args), " ".repeat(r)).into()))
    })
}

fn exec(msg: &str) -> TemplateError {
    TemplateError::Exec(msg.to_string())
}

/// The first argument as text.
fn first(args: &[Value]) -> String {
    args.first().map(plain).unwrap_or_default()
}

/// A value as `{{.}}` prints it.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// Back to JSON for the `json` function (maps come out with sorted keys, as Go's maps do).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::String(s) => s.to_string().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect(),
        Value::Function(_) => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    fn inspect() -> serde_json::Value {
        json!({
            "Name": "/web",
            "State": {"Status": "running", "Pid": 42, "Running": true},
            "Config": {"Labels": {"com.docker.compose.service": "web", "a": "b"}, "Cmd": ["httpd", "-f"]},
            "NetworkSettings": {"Networks": {
                "p_back": {"IPAddress": "10.89.0.3"},
                "p_front": {"IPAddress": "10.89.1.3"}
            }},
            "Mounts": []
        })
    }

    #[test]
    fn docker_inspect_idioms() {
        let d = inspect();
        let cases = [
            ("{{.State.Status}} {{.State.Pid}}", "running 42"),
            ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.89.0.3 10.89.1.3 "),
            (
                "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}};{{end}}",
                "p_back=10.89.0.3;p_front=10.89.1.3;",
            ),
            (r#"{{index .Config.Labels "com.docker.compose.service"}}"#, "web"),
            ("{{json .Config.Cmd}}", r#"["httpd","-f"]"#),
            ("{{json .Mounts}}", "[]"),
            (r#"{{join .Config.Cmd " "}}"#, "httpd -f"),
            ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
            ("{{upper .State.Status}} {{len .Config.Labels}}", "RUNNING 2"),
            ("{{.Missing}}", "<no value>"),
            (r#"{{printf "%s:%d" .Name .State.Pid}}"#, "/web:42"),
        ];
        for (t, want) in cases {
            assert_eq!(render(t, &d).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn a_broken_template_is_an_error_not_a_panic() {
        let e = render("{{.State", &inspect()).unwrap_err().to_string();
        assert!(e.contains("invalid --format template"), "{e}");
        assert!(render("{{.State.Status.Deeper.Still}}", &inspect()).is_err());
    }
}
