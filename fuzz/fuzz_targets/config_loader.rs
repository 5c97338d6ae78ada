//! Any text given to the config loader yields a config or errors, never a
//! panic, a hang or unbounded memory (alias bombs included).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "KEY").then(|| "sk-fuzz".to_string());
    if let Ok(loaded) = sluice::config::load_str("fuzz.yaml", text, &env) {
        // Dumping must never show the secret.
        let dump = loaded.config.redacted_json().to_string();
        assert!(!dump.contains("sk-fuzz"));
    }
});
