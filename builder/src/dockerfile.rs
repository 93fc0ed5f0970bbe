//! The Dockerfile parser: directives, comments, line continuations, heredocs, flags, exec and
//! shell forms, split into stages. Pure: substitution happens later, when the build reaches each
//! instruction (see [`crate::lex`]). Where BuildKit and the classic builder differ, BuildKit wins.

use std::path::{Path, PathBuf};

use crate::lex;

/// A parse error, naming the Dockerfile and the line (and column when it helps).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}{}: {message}", path.display(), col.map(|c| format!(":{c}")).unwrap_or_default())]
pub struct ParseError {
    /// The Dockerfile as the user named it.
    pub path: PathBuf,
    /// 1-based line of the instruction.
    pub line: usize,
    /// 1-based column, when one points at the problem.
    pub col: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The file as the user named it (for messages).
    pub path: PathBuf,
    /// The escape character (`\` unless `# escape=` says `` ` ``).
    pub escape: char,
    /// `# syntax=` directive (accepted and ignored: berth's own frontend builds it).
    pub syntax: Option<String>,
    /// ARG instructions before the first FROM (usable in FROM lines).
    pub meta_args: Vec<Instruction>,
    /// The stages in file order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and what follows it up to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Position in the file, from 0 (what `--from=N` names).
    pub index: usize,
    /// The lowercase `AS` name, if any.
    pub name: Option<String>,
    /// The raw base (before substitution): an image, `scratch`, or an earlier stage's name.
    pub base: String,
    /// The raw `--platform` flag.
    pub platform: Option<String>,
    /// The FROM line.
    pub line: usize,
    /// The FROM instruction's text (for history).
    pub text: String,
    /// The instructions after FROM.
    pub instructions: Vec<Instruction>,
}

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// Its text with continuations joined (what `image history` shows).
    pub text: String,
    /// What it says.
    pub kind: Kind,
}

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["prog", "arg"]`: run as given.
    Exec(Vec<String>),
    /// `prog arg`: run by the stage's SHELL.
    Shell(String),
}

/// A heredoc attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (quotes removed).
    pub name: String,
    /// The body, each line with its newline (`<<-`: leading tabs removed).
    pub content: String,
    /// False when the delimiter was quoted: no substitution in the body.
    pub expand: bool,
    /// `<<-`.
    pub chomp: bool,
}

/// COPY and ADD arguments (raw: substituted at build time).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    /// `--from=stage|index|image`.
    pub from: Option<String>,
    /// `--chown=user:group`.
    pub chown: Option<String>,
    /// `--chmod=mode`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--checksum=sha256:...` (ADD of a URL).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD of a git URL).
    pub keep_git_dir: bool,
    /// `--unpack` (ADD).
    pub unpack: Option<bool>,
    /// `--exclude=pattern`, repeatable.
    pub excludes: Vec<String>,
    /// The sources (heredoc sources appear as their delimiter name).
    pub sources: Vec<String>,
    /// The destination.
    pub dest: String,
    /// Heredocs among the sources.
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK` settings (raw durations, checked by the parser).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthArgs {
    /// The test command.
    pub cmd: Option<Command>,
    /// `--interval` in nanoseconds.
    pub interval: Option<i64>,
    /// `--timeout` in nanoseconds.
    pub timeout: Option<i64>,
    /// `--start-period` in nanoseconds.
    pub start_period: Option<i64>,
    /// `--start-interval` in nanoseconds.
    pub start_interval: Option<i64>,
    /// `--retries`.
    pub retries: Option<i64>,
}

/// What an instruction says. Strings are raw: quotes and variables are still in them.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `RUN [--mount=...] [--network=...] command`.
    Run {
        /// The command (shell form includes the heredoc bodies when one is used as input).
        cmd: Command,
        /// `--mount` values.
        mounts: Vec<String>,
        /// `--network`.
        network: Option<String>,
        /// `--security`.
        security: Option<String>,
        /// Heredocs of the line.
        heredocs: Vec<Heredoc>,
    },
    /// `COPY`.
    Copy(CopyArgs),
    /// `ADD`.
    Add(CopyArgs),
    /// `ENV k=v ...` (also the legacy `ENV k v`).
    Env(Vec<(String, String)>),
    /// `ARG name[=default] ...`.
    Arg(Vec<(String, Option<String>)>),
    /// `WORKDIR path`.
    Workdir(String),
    /// `USER user[:group]`.
    User(String),
    /// `LABEL k=v ...`.
    Label(Vec<(String, String)>),
    /// `EXPOSE port[/proto] ...` (raw, split after substitution).
    Expose(String),
    /// `VOLUME ["/a"]` or `VOLUME /a /b` (raw words).
    Volume(Vec<String>),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `STOPSIGNAL signal`.
    StopSignal(String),
    /// `HEALTHCHECK NONE` (None) or `HEALTHCHECK [opts] CMD ...`.
    Healthcheck(Option<HealthArgs>),
    /// `ONBUILD instruction` (the trigger's text, checked by parsing it).
    Onbuild(String),
    /// `SHELL ["exe", "arg"]`.
    Shell(Vec<String>),
    /// `MAINTAINER name` (deprecated; sets the author).
    Maintainer(String),
}

fn err(path: &Path, line: usize, message: impl Into<String>) -> ParseError {
    ParseError { path: path.to_path_buf(), line, col: None, message: message.into() }
}

/// One logical line: an instruction's joined text and the line it started on.
struct Logical {
    line: usize,
    /// 1-based column of the keyword.
    col: usize,
    text: String,
    heredocs: Vec<Heredoc>,
}

/// Matches `# key=value` (a parser directive).
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix('#')?.trim_start();
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

/// Strips a trailing escape character (and the whitespace after it): a continuation.
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end_matches([' ', '\t']);
    t.strip_suffix(escape)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The heredoc markers among the words of `args` (`<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF`).
fn heredoc_markers(args: &str, escape: char) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    for word in lex::split_raw(args, escape) {
        let w = word.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(rest) = w.strip_prefix("<<") else { continue };
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.is_empty() || rest.contains('<') {
            continue;
        }
        let quoted = rest.contains(['"', '\'']);
        let name: String = rest.chars().filter(|c| *c != '"' && *c != '\'').collect();
        if !name.is_empty() {
            out.push((name, !quoted, chomp));
        }
    }
    out
}

/// The keyword of an instruction line, uppercase.
fn keyword(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()
}

/// Splits the file into logical lines (and reads the directives).
fn logical_lines(
    path: &Path,
    src: &str,
) -> Result<(Vec<Logical>, char, Option<String>), ParseError> {
    let lines: Vec<&str> = src.lines().collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    // Directives: only at the very top, before any blank line, comment or instruction.
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else { break };
        match k.as_str() {
            "escape" => {
                escape = match v.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(err(
                            path,
                            i + 1,
                            format!("invalid escape token '{v}': it must be ` or \\"),
                        ));
                    }
                }
            }
            "syntax" => syntax = Some(v),
            // `check` and unknown directives: accepted, as BuildKit does.
            _ => {}
        }
        i += 1;
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let start = i;
        let line = lines[i].trim_start();
        let col = lines[i].chars().count() - line.chars().count() + 1;
        i += 1;
        if line.is_empty() || is_comment(line) {
            continue;
        }
        let mut text = String::new();
        match strip_continuation(line, escape) {
            None => text.push_str(line),
            Some(first) => {
                text.push_str(first);
                while let Some(next) = lines.get(i) {
                    i += 1;
                    // Comments and empty lines inside a continuation are dropped.
                    if is_comment(next) || next.trim().is_empty() {
                        continue;
                    }
                    match strip_continuation(next, escape) {
                        Some(part) => text.push_str(part),
                        None => {
                            text.push_str(next);
                            break;
                        }
                    }
                }
            }
        }
        let mut heredocs = Vec::new();
        let kw = keyword(&text);
        if matches!(kw.as_str(), "RUN" | "COPY" | "ADD") {
            let args = text[kw.len()..].to_string();
            for (name, expand, chomp) in heredoc_markers(&args, escape) {
                let mut content = String::new();
                let mut done = false;
                while let Some(body) = lines.get(i) {
                    i += 1;
                    let body = if chomp { body.trim_start_matches('\t') } else { body };
                    if body == name {
                        done = true;
                        break;
                    }
                    content.push_str(body);
                    content.push('\n');
                }
                if !done {
                    return Err(err(
                        path,
                        start + 1,
                        format!("unterminated heredoc: no line \"{name}\" ends the {kw} here"),
                    ));
                }
                heredocs.push(Heredoc { name, content, expand, chomp });
            }
        }
        out.push(Logical { line: start + 1, col, text: text.trim_end().to_string(), heredocs });
    }
    Ok((out, escape, syntax))
}

/// The flags (`--name=value`, `--name`) at the start of `rest`, and what follows them.
fn split_flags(rest: &str) -> (Vec<(String, Option<String>)>, String) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while let Some(after) = s.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let word = &after[..end];
        if word.is_empty() {
            break; // a lone `--` is an argument
        }
        match word.split_once('=') {
            Some((k, v)) => flags.push((k.to_string(), Some(v.to_string()))),
            None => flags.push((word.to_string(), None)),
        }
        s = after[end..].trim_start();
    }
    (flags, s.to_string())
}

/// Checked flag access for one instruction.
struct Flags<'a> {
    path: &'a Path,
    line: usize,
    kw: &'a str,
    flags: Vec<(String, Option<String>)>,
}

impl Flags<'_> {
    fn allow(&self, known: &[&str]) -> Result<(), ParseError> {
        for (k, _) in &self.flags {
            if !known.contains(&k.as_str()) {
                return Err(err(
                    self.path,
                    self.line,
                    format!("unknown flag --{k} for {}", self.kw),
                ));
            }
        }
        Ok(())
    }

    fn string(&self, name: &str) -> Result<Option<String>, ParseError> {
        let mut found = None;
        for (k, v) in &self.flags {
            if k == name {
                match v {
                    Some(v) => found = Some(v.clone()),
                    None => {
                        return Err(err(
                            self.path,
                            self.line,
                            format!("missing a value on flag --{name} of {}", self.kw),
                        ));
                    }
                }
            }
        }
        Ok(found)
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.flags.iter().filter(|(k, _)| k == name).filter_map(|(_, v)| v.clone()).collect()
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ParseError> {
        let mut found = None;
        for (k, v) in &self.flags {
            if k == name {
                found = Some(match v.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(o) => {
                        return Err(err(
                            self.path,
                            self.line,
                            format!("expecting boolean value for flag --{name}, not: {o}"),
                        ));
                    }
                });
            }
        }
        Ok(found)
    }
}

/// `["a", "b"]` -> Some(list); anything else None.
fn json_list(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command(rest: &str) -> Command {
    match json_list(rest) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    }
}

/// Parses a Go duration (`30s`, `1m30s`, `500ms`, `1h`) into nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    compose_spec::convert::parse_go_duration(s)
}

/// `k=v` pairs of ENV and LABEL (and the legacy `ENV k v`).
fn name_vals(
    path: &Path,
    line: usize,
    kw: &str,
    rest: &str,
    escape: char,
) -> Result<Vec<(String, String)>, ParseError> {
    let words = lex::split_raw(rest, escape);
    let Some(first) = words.first() else {
        return Err(err(path, line, format!("{kw} requires at least one argument")));
    };
    if !first.contains('=') {
        // Legacy form: the first word is the key, the rest of the line its value.
        let value = rest.trim_start()[first.len()..].trim();
        if value.is_empty() {
            return Err(err(path, line, format!("{kw} {first} needs a value (use {first}=VALUE)")));
        }
        return Ok(vec![(first.clone(), value.to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            Some(_) => Err(err(path, line, format!("{kw} names can not be blank"))),
            None => Err(err(
                path,
                line,
                format!("Syntax error - can't find = in \"{w}\". Must be of the form: name=value"),
            )),
        })
        .collect()
}

/// Parses one logical line into an instruction.
fn instruction(
    path: &Path,
    l: &Logical,
    escape: char,
    onbuild: bool,
) -> Result<Instruction, ParseError> {
    let text = l.text.trim();
    let kw_raw = text.split_whitespace().next().unwrap_or_default();
    let kw = kw_raw.to_ascii_uppercase();
    let rest = text[kw_raw.len()..].trim();
    let line = l.line;
    let (flags, args) = split_flags(rest);
    let f = Flags { path, line, kw: &kw, flags };
    let need_args = |what: &str| -> Result<(), ParseError> {
        if args.trim().is_empty() {
            Err(err(path, line, format!("{kw} requires {what}")))
        } else {
            Ok(())
        }
    };
    let kind = match kw.as_str() {
        // FROM lines become stages in `parse`; here one can only come from a trigger.
        "FROM" => return Err(err(path, line, "FROM can't be used here")),
        "RUN" => {
            f.allow(&["mount", "network", "security"])?;
            need_args("at least one argument")?;
            let network = f.string("network")?;
            if let Some(n) = &network
                && !matches!(n.as_str(), "default" | "none" | "host")
            {
                return Err(err(
                    path,
                    line,
                    format!("RUN --network={n}: must be default, none or host"),
                ));
            }
            let mounts = f.strings("mount");
            for m in &mounts {
                if !m.contains('$') {
                    crate::mounts::parse_mount(m).map_err(|e| err(path, line, e))?;
                }
            }
            Kind::Run {
                cmd: command(&args),
                mounts,
                network,
                security: f.string("security")?,
                heredocs: l.heredocs.clone(),
            }
        }
        "COPY" | "ADD" => {
            if kw == "COPY" {
                f.allow(&["from", "chown", "chmod", "link", "parents", "exclude"])?;
            } else {
                f.allow(&[
                    "chown",
                    "chmod",
                    "link",
                    "checksum",
                    "keep-git-dir",
                    "exclude",
                    "unpack",
                ])?;
            }
            let list = match json_list(&args) {
                Some(v) => v,
                None => lex::split_raw(&args, escape),
            };
            if list.len() < 2 {
                return Err(err(path, line, format!("{kw} requires at least two arguments")));
            }
            let mut sources = list;
            let dest = sources.pop().unwrap_or_default();
            // Heredoc sources are named by their delimiter.
            for s in sources.iter_mut() {
                if let Some((name, _, _)) = heredoc_markers(s, escape).into_iter().next() {
                    *s = name;
                }
            }
            let a = CopyArgs {
                from: f.string("from")?,
                chown: f.string("chown")?,
                chmod: f.string("chmod")?,
                link: f.bool("link")?.unwrap_or(false),
                parents: f.bool("parents")?.unwrap_or(false),
                checksum: f.string("checksum")?,
                keep_git_dir: f.bool("keep-git-dir")?.unwrap_or(false),
                unpack: f.bool("unpack")?,
                excludes: f.strings("exclude"),
                sources,
                dest,
                heredocs: l.heredocs.clone(),
            };
            if kw == "COPY" { Kind::Copy(a) } else { Kind::Add(a) }
        }
        "ENV" | "LABEL" => {
            f.allow(&[])?;
            let kv = name_vals(path, line, &kw, &args, escape)?;
            if kw == "ENV" { Kind::Env(kv) } else { Kind::Label(kv) }
        }
        "ARG" => {
            f.allow(&[])?;
            need_args("at least one argument")?;
            let mut out = Vec::new();
            for w in lex::split_raw(&args, escape) {
                match w.split_once('=') {
                    Some(("", _)) => return Err(err(path, line, "ARG names can not be blank")),
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((w, None)),
                }
            }
            Kind::Arg(out)
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
            f.allow(&[])?;
            need_args("exactly one argument")?;
            let a = args.trim().to_string();
            match kw.as_str() {
                "WORKDIR" => Kind::Workdir(a),
                "USER" => Kind::User(a),
                "STOPSIGNAL" => Kind::StopSignal(a),
                _ => Kind::Maintainer(a),
            }
        }
        "EXPOSE" => {
            f.allow(&[])?;
            need_args("at least one argument")?;
            Kind::Expose(args.trim().to_string())
        }
        "VOLUME" => {
            f.allow(&[])?;
            need_args("at least one argument")?;
            let v = match json_list(&args) {
                Some(v) => v,
                None => args.split_whitespace().map(str::to_string).collect(),
            };
            if v.iter().any(|p| p.trim().is_empty()) {
                return Err(err(path, line, "VOLUME specified can not be an empty string"));
            }
            Kind::Volume(v)
        }
        "CMD" | "ENTRYPOINT" => {
            f.allow(&[])?;
            let c = command(&args);
            if kw == "CMD" { Kind::Cmd(c) } else { Kind::Entrypoint(c) }
        }
        "SHELL" => {
            f.allow(&[])?;
            match json_list(&args) {
                Some(v) if !v.is_empty() => Kind::Shell(v),
                _ => {
                    return Err(err(
                        path,
                        line,
                        "SHELL requires the arguments to be in JSON form, like [\"/bin/sh\", \"-c\"]",
                    ));
                }
            }
        }
        "HEALTHCHECK" => {
            f.allow(&["interval", "timeout", "start-period", "start-interval", "retries"])?;
            let (first, cmd_rest) = match args.split_once(char::is_whitespace) {
                Some((a, b)) => (a.to_ascii_uppercase(), b.trim().to_string()),
                None => (args.trim().to_ascii_uppercase(), String::new()),
            };
            match first.as_str() {
                "NONE" => {
                    if !cmd_rest.is_empty() || !f.flags.is_empty() {
                        return Err(err(path, line, "HEALTHCHECK NONE takes no arguments"));
                    }
                    Kind::Healthcheck(None)
                }
                "CMD" => {
                    if cmd_rest.is_empty() {
                        return Err(err(path, line, "HEALTHCHECK CMD needs a command"));
                    }
                    let dur = |name: &str| -> Result<Option<i64>, ParseError> {
                        match f.string(name)? {
                            None => Ok(None),
                            Some(v) => match parse_duration(&v) {
                                Some(d) if d == 0 || d >= 1_000_000 => Ok(Some(d)),
                                Some(_) => Err(err(
                                    path,
                                    line,
                                    format!("HEALTHCHECK --{name} cannot be less than 1ms"),
                                )),
                                None => Err(err(
                                    path,
                                    line,
                                    format!("HEALTHCHECK --{name}={v}: not a duration"),
                                )),
                            },
                        }
                    };
                    let retries = match f.string("retries")? {
                        None => None,
                        Some(r) => match r.parse::<i64>() {
                            Ok(n) if n >= 0 => Some(n),
                            _ => {
                                return Err(err(
                                    path,
                                    line,
                                    format!("HEALTHCHECK --retries={r}: not a count"),
                                ));
                            }
                        },
                    };
                    Kind::Healthcheck(Some(HealthArgs {
                        cmd: Some(command(&cmd_rest)),
                        interval: dur("interval")?,
                        timeout: dur("timeout")?,
                        start_period: dur("start-period")?,
                        start_interval: dur("start-interval")?,
                        retries,
                    }))
                }
                _ => {
                    return Err(err(
                        path,
                        line,
                        "HEALTHCHECK must be followed by NONE or CMD (Unknown type)",
                    ));
                }
            }
        }
        "ONBUILD" => {
            if onbuild {
                return Err(err(
                    path,
                    line,
                    "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                ));
            }
            let trigger = rest.to_string();
            let tkw = keyword(&trigger);
            if matches!(tkw.as_str(), "FROM" | "MAINTAINER") {
                return Err(err(path, line, format!("{tkw} isn't allowed as an ONBUILD trigger")));
            }
            if trigger.is_empty() {
                return Err(err(path, line, "ONBUILD requires at least one argument"));
            }
            let inner = Logical { line, col: l.col, text: trigger.clone(), heredocs: Vec::new() };
            instruction(path, &inner, escape, true)?;
            Kind::Onbuild(trigger)
        }
        other => {
            return Err(ParseError {
                path: path.to_path_buf(),
                line,
                col: Some(l.col),
                message: format!("unknown instruction: {other}"),
            });
        }
    };
    Ok(Instruction { line, text: text.to_string(), kind })
}

/// Parses a FROM line into a stage (without instructions).
fn from_stage(path: &Path, l: &Logical, index: usize) -> Result<Stage, ParseError> {
    let rest = l.text.trim()[4..].trim();
    let (flags, args) = split_flags(rest);
    let f = Flags { path, line: l.line, kw: "FROM", flags };
    f.allow(&["platform"])?;
    let words: Vec<&str> = args.split_whitespace().collect();
    let name = match words.as_slice() {
        [_] => None,
        [_, as_, n] if as_.eq_ignore_ascii_case("as") => {
            let n = n.to_ascii_lowercase();
            let ok = n.starts_with(|c: char| c.is_ascii_lowercase())
                && n.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !ok {
                return Err(err(
                    path,
                    l.line,
                    format!(
                        "invalid name for build stage: \"{n}\", name can't start with a number or contain symbols"
                    ),
                ));
            }
            Some(n)
        }
        _ => {
            return Err(err(path, l.line, "FROM requires either one or three arguments"));
        }
    };
    Ok(Stage {
        index,
        name,
        base: words[0].to_string(),
        platform: f.string("platform")?,
        line: l.line,
        text: l.text.trim().to_string(),
        instructions: Vec::new(),
    })
}

/// Parses Dockerfile text; `path` names it in errors.
pub fn parse(path: &Path, src: &str) -> Result<Dockerfile, ParseError> {
    let (lines, escape, syntax) = logical_lines(path, src)?;
    let mut df = Dockerfile {
        path: path.to_path_buf(),
        escape,
        syntax,
        meta_args: Vec::new(),
        stages: Vec::new(),
    };
    for l in &lines {
        if keyword(&l.text) == "FROM" {
            let st = from_stage(path, l, df.stages.len())?;
            if let Some(n) = &st.name
                && df.stages.iter().any(|s| s.name.as_ref() == Some(n))
            {
                return Err(err(path, l.line, format!("duplicate stage name \"{n}\"")));
            }
            df.stages.push(st);
            continue;
        }
        let ins = instruction(path, l, escape, false)?;
        match df.stages.last_mut() {
            Some(st) => st.instructions.push(ins),
            None if matches!(ins.kind, Kind::Arg(_)) => df.meta_args.push(ins),
            None => {
                return Err(err(
                    path,
                    l.line,
                    format!(
                        "{} before the first FROM: only ARG may come before FROM",
                        keyword(&l.text)
                    ),
                ));
            }
        }
    }
    if df.stages.is_empty() {
        return Err(err(
            path,
            lines.last().map(|l| l.line).unwrap_or(1),
            "the Dockerfile has no FROM",
        ));
    }
    Ok(df)
}

/// Parses one instruction's text (an ONBUILD trigger of a parent image).
pub fn parse_trigger(path: &Path, text: &str, escape: char) -> Result<Instruction, ParseError> {
    let l = Logical { line: 0, col: 1, text: text.to_string(), heredocs: Vec::new() };
    instruction(path, &l, escape, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Dockerfile {
        match parse(Path::new("Dockerfile"), src) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    fn perr(src: &str) -> String {
        parse(Path::new("Dockerfile"), src).unwrap_err().to_string()
    }

    fn kinds(src: &str) -> Vec<Kind> {
        p(src).stages.remove(0).instructions.into_iter().map(|i| i.kind).collect()
    }

    #[test]
    fn continuations_and_comments() {
        let d =
            p("# a comment\nFROM busybox\nRUN echo a \\\n  # inside\n\n    b \\  \n c\nCMD x\n");
        let st = &d.stages[0];
        assert_eq!(st.instructions[0].line, 3);
        assert_eq!(
            st.instructions[0].kind,
            Kind::Run {
                cmd: Command::Shell("echo a     b  c".into()),
                mounts: vec![],
                network: None,
                security: None,
                heredocs: vec![],
            }
        );
        assert_eq!(st.instructions[1].line, 8);
    }

    #[test]
    fn directives() {
        let d = p("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\n b\n");
        assert_eq!(d.escape, '`');
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.stages[0].instructions[0].text, "RUN a  b");
        // After an instruction (or blank line) it is a comment.
        let d = p("\n# escape=`\nFROM x\nRUN a \\\n b\n");
        assert_eq!(d.escape, '\\');
        assert!(perr("# escape=x\nFROM a").contains("invalid escape token"));
    }

    #[test]
    fn heredocs() {
        let k = kinds(
            "FROM x\nRUN <<EOF\necho $A\nEOF\nRUN <<-\"END\" cat\n\tone\n\tEND\nCOPY <<a <<'b' /dst/\nx\na\ny\nb\n",
        );
        let Kind::Run { heredocs, .. } = &k[0] else { panic!() };
        assert_eq!(
            heredocs[0],
            Heredoc { name: "EOF".into(), content: "echo $A\n".into(), expand: true, chomp: false }
        );
        let Kind::Run { heredocs, .. } = &k[1] else { panic!() };
        assert_eq!(heredocs[0].content, "one\n");
        assert!(!heredocs[0].expand && heredocs[0].chomp);
        let Kind::Copy(c) = &k[2] else { panic!() };
        assert_eq!(c.sources, ["a", "b"]);
        assert_eq!(c.dest, "/dst/");
        assert_eq!(c.heredocs[1].content, "y\n");
        assert!(!c.heredocs[1].expand);
        assert_eq!(
            perr("FROM x\nRUN <<EOF\necho\n"),
            "Dockerfile:2: unterminated heredoc: no line \"EOF\" ends the RUN here"
        );
    }

    #[test]
    fn forms_and_flags() {
        let k = kinds(
            "FROM --platform=$BUILDPLATFORM x AS Build\n\
             RUN --mount=type=cache,target=/c --network=none [\"sh\", \"-c\", \"x\"]\n\
             COPY --from=build --chown=1:2 --chmod=755 --link a b /d/\n\
             ADD --checksum=sha256:abc http://e/x /x\n\
             CMD [\"a\"]\nENTRYPOINT run me\nSHELL [\"/bin/bash\", \"-c\"]\n\
             HEALTHCHECK --interval=5s --retries=2 CMD wget -q x\nHEALTHCHECK NONE\n\
             STOPSIGNAL SIGINT\nONBUILD RUN echo hi\nMAINTAINER me\nVOLUME [\"/a\", \"/b\"]\nVOLUME /c /d\n\
             EXPOSE 80/tcp $P\nUSER app:app\nWORKDIR /srv\n",
        );
        assert!(
            matches!(&k[0], Kind::Run { cmd: Command::Exec(v), network: Some(n), mounts, .. } if v.len() == 3 && n == "none" && mounts.len() == 1)
        );
        let Kind::Copy(c) = &k[1] else { panic!() };
        assert_eq!(
            (c.from.as_deref(), c.chown.as_deref(), c.chmod.as_deref(), c.link),
            (Some("build"), Some("1:2"), Some("755"), true)
        );
        assert_eq!(c.sources, ["a", "b"]);
        let Kind::Add(a) = &k[2] else { panic!() };
        assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
        assert_eq!(k[3], Kind::Cmd(Command::Exec(vec!["a".into()])));
        assert_eq!(k[4], Kind::Entrypoint(Command::Shell("run me".into())));
        assert_eq!(k[5], Kind::Shell(vec!["/bin/bash".into(), "-c".into()]));
        let Kind::Healthcheck(Some(h)) = &k[6] else { panic!() };
        assert_eq!((h.interval, h.retries), (Some(5_000_000_000), Some(2)));
        assert_eq!(k[7], Kind::Healthcheck(None));
        assert_eq!(k[8], Kind::StopSignal("SIGINT".into()));
        assert_eq!(k[9], Kind::Onbuild("RUN echo hi".into()));
        assert_eq!(k[10], Kind::Maintainer("me".into()));
        assert_eq!(k[11], Kind::Volume(vec!["/a".into(), "/b".into()]));
        assert_eq!(k[12], Kind::Volume(vec!["/c".into(), "/d".into()]));
        assert_eq!(k[13], Kind::Expose("80/tcp $P".into()));
        let d = p("FROM --platform=$BUILDPLATFORM x AS Build\n");
        assert_eq!(d.stages[0].name.as_deref(), Some("build"));
        assert_eq!(d.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    }

    #[test]
    fn env_label_arg() {
        let k = kinds(
            "FROM x\nENV A=1 B=\"two words\" C=a\\ b\nENV D some value\nLABEL x=y \"k 2\"=v\nARG V=1 W\n",
        );
        assert_eq!(
            k[0],
            Kind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("C".into(), "a\\ b".into()),
            ])
        );
        assert_eq!(k[1], Kind::Env(vec![("D".into(), "some value".into())]));
        assert_eq!(
            k[2],
            Kind::Label(vec![("x".into(), "y".into()), ("\"k 2\"".into(), "v".into())])
        );
        assert_eq!(k[3], Kind::Arg(vec![("V".into(), Some("1".into())), ("W".into(), None)]));
        assert!(perr("FROM x\nENV A=1 B\n").contains("can't find = in \"B\""));
        assert!(perr("FROM x\nENV A\n").contains("needs a value"));
    }

    #[test]
    fn stages_and_meta_args() {
        let d = p("ARG BASE=busybox\nFROM $BASE AS one\nRUN a\nfrom one\nRUN b\n");
        assert_eq!(d.meta_args.len(), 1);
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.stages[1].base, "one");
        assert_eq!(d.stages[1].index, 1);
        assert!(perr("RUN a\nFROM x").contains("Dockerfile:1: RUN before the first FROM"));
        assert!(perr("FROM a AS x\nFROM b AS x").contains("duplicate stage name"));
        assert!(perr("FROM a AS 1x").contains("invalid name"));
        assert!(perr("FROM a b").contains("one or three"));
        assert!(perr("# nothing\n").contains("no FROM"));
    }

    #[test]
    fn bad_instructions_name_the_line() {
        assert_eq!(perr("FROM x\n\n  FOO bar\n"), "Dockerfile:3:3: unknown instruction: FOO");
        assert!(perr("FROM x\nCOPY a\n").contains("Dockerfile:2: COPY requires at least two"));
        assert!(perr("FROM x\nCOPY --bogus a b\n").contains("unknown flag --bogus"));
        assert!(perr("FROM x\nSHELL sh -c\n").contains("JSON form"));
        assert!(perr("FROM x\nHEALTHCHECK --interval=abc CMD x\n").contains("not a duration"));
        assert!(perr("FROM x\nHEALTHCHECK FOO\n").contains("NONE or CMD"));
        assert!(perr("FROM x\nONBUILD ONBUILD RUN x\n").contains("chaining"));
        assert!(perr("FROM x\nONBUILD FROM y\n").contains("isn't allowed"));
        assert!(perr("FROM x\nRUN --network=bridge x\n").contains("must be default"));
        assert!(perr("FROM x\nRUN --mount=type=nope x\n").contains("type"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
    }
}
