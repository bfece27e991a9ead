//! Spin's variables where there is no Spin: `get("griddb_url")` reads the
//! environment variable `SPIN_VARIABLE_GRIDDB_URL`, which is how Spin itself
//! lets the environment set an application variable. `wasmtime serve` passes
//! the guest its environment with `--env NAME=VALUE`. A variable that is not
//! set is `undefined`, and the components take their default, as they do
//! for a variable a manifest does not declare.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "variables-component",
});

use exports::fermyon::spin::variables::{Error, Guest};

struct Environment;

/// Spin's prefix for variables set from the environment.
const PREFIX: &str = "SPIN_VARIABLE_";

impl Guest for Environment {
    fn get(name: String) -> Result<String, Error> {
        if !is_variable_name(&name) {
            return Err(Error::InvalidName(format!(
                "`{name}` is not a variable name: lower-case snake_case words, each starting with a letter"
            )));
        }
        let key = format!("{PREFIX}{}", name.to_ascii_uppercase());
        wasip2::cli::environment::get_environment()
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
            .ok_or_else(|| Error::Undefined(format!("no variable `{name}` (set {key})")))
    }
}

/// Spin's rule for variable names (`LowerSnakeId`): `_`-separated words of
/// lower-case ASCII letters and digits, each starting with a letter.
fn is_variable_name(name: &str) -> bool {
    name.split('_').all(|word| {
        word.starts_with(|c: char| c.is_ascii_lowercase())
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

export!(Environment);
