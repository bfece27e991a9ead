//! Spin's component variables (`fermyon:spin/variables@2.0.0`): each instance
//! reads the values its manifest entry gives under `[component.<id>.variables]`,
//! already expanded from application variables when the manifest was loaded.

use crate::bindings::host_services::fermyon::spin::variables as wit;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// The variables import of one instance.
pub struct VariablesHost {
    values: Arc<BTreeMap<String, String>>,
}

impl VariablesHost {
    pub fn new(values: Arc<BTreeMap<String, String>>) -> VariablesHost {
        VariablesHost { values }
    }
}

struct VariablesImport;

impl HasData for VariablesImport {
    type Data<'a> = &'a mut VariablesHost;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut VariablesHost,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, VariablesImport>(linker, get)
}

impl wit::Host for VariablesHost {
    async fn get(&mut self, name: String) -> Result<String, wit::Error> {
        if !crate::manifest::is_variable_name(&name) {
            return Err(wit::Error::InvalidName(name));
        }
        self.values
            .get(&name)
            .cloned()
            .ok_or(wit::Error::Undefined(name))
    }
}
