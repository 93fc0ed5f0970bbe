#[test]
fn dump() {
    let d = std::env::var("DUMP_DIR").unwrap_or_default();
    if d.is_empty() {
        return;
    }
    let opts = compose_spec::loader::LoadOptions { working_dir: d.into(), ..Default::default() };
    match compose_spec::loader::load_tree(&opts) {
        Ok(t) => {
            println!("{}", serde_json::to_string_pretty(&t.root.to_json()).unwrap());
            println!("{:?}", t.warnings);
        }
        Err(e) => println!("ERR {e}"),
    }
}
