//! The example studies shipped in `examples/studies` are valid study files.
#![allow(clippy::unwrap_used)]

#[test]
fn every_example_study_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/studies");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let study = reproml_study::Study::from_toml(&text, &path.display().to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(study.sides.len() >= 2);
            seen += 1;
        }
    }
    assert!(seen >= 2, "calibration and torch-release at least");
}
