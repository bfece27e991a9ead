//! `spin.toml` (Spin manifest v2) → a typed description of the application.
//!
//! The manifest is cromflag's only configuration surface, and the same file runs
//! under Spin, so this reads Spin's format: `[application]`, `[variables]`,
//! `[[trigger.<type>]]` and `[component.<id>]`. Paths are resolved against the
//! manifest's directory; variables are resolved once, at load, with Spin's
//! environment overrides (`SPIN_VARIABLE_<NAME>`).

use crate::runtime::AllowedHost;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The application as the host runs it.
#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    /// Prefix of every HTTP route (`[application.trigger.http] base`), `/` by default.
    pub http_base: String,
    pub http_triggers: Vec<HttpTriggerConfig>,
    /// The broker connection (`[application.trigger.mqtt]`), if any MQTT trigger exists.
    pub mqtt: Option<MqttSettings>,
    pub mqtt_triggers: Vec<MqttTriggerConfig>,
    pub cron_triggers: Vec<CronTriggerConfig>,
    pub components: BTreeMap<String, ComponentSpec>,
    pub variables: Variables,
    /// How long each listed device's telemetry is kept, by device id, as
    /// written (`[application.tool.cromflag.device_retention]`: a cromflag
    /// setting Spin ignores; `retention` reads it).
    pub device_retention: BTreeMap<String, String>,
    /// Alarm rules as written (`[application.tool.cromflag.alarms]`;
    /// `alarms` reads them).
    pub alarms: AlarmsConfig,
}

/// `[application.tool.cromflag.alarms]`: per-device inactivity timeouts
/// (over the variable `inactivity_timeout`) and threshold rules.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsConfig {
    /// Device id → duration ("30m"), or "off".
    #[serde(default)]
    pub inactivity_timeout: BTreeMap<String, String>,
    /// `[[application.tool.cromflag.alarms.rule]]`.
    #[serde(default, rename = "rule")]
    pub rules: Vec<ThresholdRuleConfig>,
}

/// One `[[application.tool.cromflag.alarms.rule]]`. A rule naming
/// `devices` overrides, for those devices, the rule of the same name
/// without `devices`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRuleConfig {
    pub name: String,
    /// `<column> <op> <number>`, op one of `>`, `>=`, `<`, `<=`.
    pub when: String,
    /// How long the readings must breach before it fires ("5m"); none: at once.
    #[serde(default, rename = "for")]
    pub hold: Option<String>,
    /// How far back past the threshold a reading must be to clear it.
    #[serde(default)]
    pub hysteresis: Option<f64>,
    #[serde(default)]
    pub severity: Option<String>,
    /// Only these devices (none: every device).
    #[serde(default)]
    pub devices: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTriggerConfig {
    pub route: String,
    pub component: String,
}

/// `[application.trigger.mqtt]`, with variables expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttSettings {
    /// `mqtt://host:port` or `mqtts://host:port`; empty: no external broker.
    pub address: String,
    /// Empty or absent: connect without credentials.
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_secs: u64,
    /// For `mqtts://`: the variables `mqtt_tls_ca_file` (PEM CA certificates
    /// to trust instead of the WebPKI roots), `mqtt_tls_cert_file` and
    /// `mqtt_tls_key_file` (a PEM client certificate chain and key), as paths
    /// against the manifest's directory.
    pub tls: MqttTls,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MqttTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// `[[trigger.mqtt]]`: a topic filter bound to a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttTriggerConfig {
    pub topic: String,
    /// 0, 1 or 2.
    pub qos: u8,
    pub component: String,
}

/// `[[trigger.cron]]`: a schedule bound to a component.
#[derive(Clone, Debug)]
pub struct CronTriggerConfig {
    /// The trigger's `id`, or its component's id: the key of its run records.
    pub name: String,
    pub component: String,
    /// The expression as written, e.g. `0 5 0 * * *`.
    pub expression: String,
    pub schedule: croner::Cron,
    /// What to do, at start-up, with the ticks missed while the host was down.
    pub catch_up: CatchUp,
}

/// The catch-up policy of a component's cron triggers, set (as Spin ignores
/// tool tables) in `[component.<id>.tool.cromflag] cron_catch_up = "..."`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CatchUp {
    /// Run no missed tick.
    Skip,
    /// Run the most recent missed tick only (the default).
    #[default]
    Latest,
    /// Run every missed tick, oldest first (at most `triggers::cron::MAX_CATCH_UP`).
    All,
}

/// Parses a cron expression as the Spin cron trigger reads it: six or seven
/// fields, seconds first (`sec min hour day-of-month month day-of-week [year]`),
/// weekdays 1–7 from Sunday or by name, `a/b` meaning "from a, every b".
pub fn parse_cron(expression: &str) -> std::result::Result<croner::Cron, String> {
    if !matches!(expression.split_whitespace().count(), 6 | 7) {
        return Err(
            "a cron expression has 6 or 7 fields, seconds first (e.g. \"0 5 0 * * *\")".into(),
        );
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Optional)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
}

#[derive(Clone, Debug)]
pub struct ComponentSpec {
    pub id: String,
    /// Absolute path of the `.wasm` file.
    pub source: PathBuf,
    /// The component's WASI environment (`environment = { KEY = "value" }`).
    pub environment: Vec<(String, String)>,
    /// Component variables with their templates expanded.
    pub variables: BTreeMap<String, String>,
    /// The catch-up policy of the component's cron triggers.
    pub cron_catch_up: CatchUp,
    /// The transform components (ids) this component's ingest runs, in order
    /// (`[component.<id>.tool.cromflag] transforms = [...]`).
    pub transforms: Vec<String>,
    /// As a transform: what one batch may use.
    pub transform_limits: TransformLimits,
    /// Where its outgoing HTTP may go (`allowed_outbound_hosts`, templates
    /// expanded); nowhere by default.
    pub allowed_outbound_hosts: Vec<AllowedHost>,
}

/// What one run of a transform may use (`[component.<id>.tool.cromflag]`
/// `max_fuel`, `fuel_per_value` and `max_memory_bytes` of the transform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransformLimits {
    /// Fuel (about one unit per Wasm instruction) for one batch, plus
    /// `fuel_per_value` for each value in it: the defaults give a small batch
    /// a few milliseconds (10 million units) and grow with the batch, since
    /// merely reading and writing a value costs a few hundred units.
    pub max_fuel: u64,
    pub fuel_per_value: u64,
    /// The most linear memory an instance may have.
    pub max_memory_bytes: usize,
}

impl TransformLimits {
    /// The most memory any transform may be given.
    pub const MAX_MEMORY_BYTES: usize = 256 << 20;
}

impl Default for TransformLimits {
    fn default() -> Self {
        TransformLimits {
            max_fuel: 10_000_000,
            fuel_per_value: 1_000,
            max_memory_bytes: 16 << 20,
        }
    }
}

/// Application variables, each with its resolved value (if any).
#[derive(Clone, Debug, Default)]
pub struct Variables(BTreeMap<String, Option<String>>);

impl Variables {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.as_deref())
    }

    /// Every declared variable's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Expands `{{ name }}` references in `template` (Spin's template syntax).
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find("}}")
                .ok_or_else(|| anyhow!("unclosed `{{{{` in `{template}`"))?;
            let name = rest[start + 2..start + end].trim();
            let value = match self.0.get(name) {
                None => bail!("`{template}` refers to undefined variable `{name}`"),
                Some(None) => bail!(
                    "variable `{name}` has no value: set SPIN_VARIABLE_{}",
                    name.to_uppercase()
                ),
                Some(Some(value)) => value,
            };
            out.push_str(value);
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

// Spin's manifest schema (`spin_manifest::schema`, v2.rs and common.rs of
// Spin 4.0.2) denies unknown keys in the top-level table, `[application]`,
// `[variables]` entries, `[component.<id>]`, its `build`, `files` entries,
// `targets` entries, `dependencies` entries, `profile.<name>` and
// `profile.<name>.build`, and in a component's `source` table. The structs
// below deny them in exactly those places, so that a manifest Spin refuses
// fails here too; every key Spin knows there is accepted, and the ones this
// host has no use for are read and ignored. Trigger tables and
// `[application.trigger.<type>]` are free-form in Spin's schema (each trigger
// checks its own: see `RawHttpTrigger` and the others), and `tool` tables are
// for tools: Spin ignores them.
//
// Sub-tables are kept as TOML and read one by one (`read_table`), so that a
// refusal names the table it is in, not only the key.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: u32,
    application: toml::Table,
    #[serde(default)]
    variables: BTreeMap<String, toml::Value>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<String, toml::Table>,
}

/// `[application]` (Spin's `AppDetails`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "Spin's fields, accepted so that what Spin takes loads here"
)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    authors: Vec<String>,
    /// Each read on its own (`TARGET_FORMS`).
    #[serde(default)]
    targets: Vec<toml::Value>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Table>,
    #[serde(default)]
    tool: BTreeMap<String, toml::Table>,
}

/// A deployment target (Spin's `TargetEnvironmentRef`): `"spin-up:3.3"`,
/// `{ url }` or `{ path }` (see `check_form`).
const TARGET_FORMS: &[Form] = &[
    ("url", read_as::<RawUrlTarget>),
    ("path", read_as::<RawFileTarget>),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
struct RawUrlTarget {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
struct RawFileTarget {
    path: String,
}

/// An entry of `[variables]` (Spin's `Variable`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for Spin compatibility; values are never logged anyway"
    )]
    secret: bool,
    #[allow(dead_code, reason = "accepted for Spin compatibility")]
    description: Option<String>,
}

/// Spin's MQTT trigger writes every setting as a string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttSettings {
    address: String,
    username: Option<String>,
    password: Option<String>,
    keep_alive_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttTrigger {
    component: String,
    topic: String,
    qos: Option<String>,
    #[allow(dead_code, reason = "Spin's optional trigger id")]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCronTrigger {
    component: String,
    cron_expression: String,
    id: Option<String>,
}

/// `[component.<id>.tool.cromflag]`: settings of this host that Spin ignores.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawToolSettings {
    cron_catch_up: Option<String>,
    #[serde(default)]
    transforms: Vec<String>,
    max_fuel: Option<u64>,
    fuel_per_value: Option<u64>,
    max_memory_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    route: String,
    component: String,
    #[allow(dead_code, reason = "Spin's optional trigger id")]
    id: Option<String>,
    /// Spin's HTTP trigger also takes `executor = { type = "http" }` (or
    /// `"spin"`, its old name): the wasi:http handler this host calls anyway.
    executor: Option<RawHttpExecutor>,
}

/// Spin's `HttpExecutorType`. Wagi (a CGI-style executor) is not served here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", tag = "type")]
enum RawHttpExecutor {
    #[serde(alias = "spin")]
    Http,
    /// Its settings (`entrypoint`, `argv`) are taken only to be refused whole.
    Wagi(#[allow(dead_code, reason = "refused whatever it says")] toml::Table),
}

/// `[component.<id>]` (Spin's `Component`): every key Spin knows. The ones
/// this host has no use for grant nothing here (no files, key-value stores,
/// SQLite databases or AI models are offered to components) and are accepted
/// so that the same manifest runs under Spin. `dependencies` are checked as
/// Spin reads them and composed nothing here: this host links the imports
/// they would satisfy itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "Spin's fields, accepted so that what Spin takes loads here"
)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    description: String,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// Each read on its own (`FILES_FORMS`).
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    /// Deprecated in Spin for `allowed_outbound_hosts`, still accepted.
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    /// Each read on its own (`TARGET_FORMS`).
    targets: Option<Vec<toml::Value>>,
    /// Read on its own (`RawBuild`), to name the table in a refusal.
    build: Option<toml::Table>,
    /// Tool tables (`[component.<id>.tool.<name>]`): Spin ignores them; cromflag reads its own.
    #[serde(default)]
    tool: BTreeMap<String, toml::Table>,
    dependencies_inherit_configuration: Option<bool>,
    /// Each entry read on its own (`DEPENDENCY_FORMS`).
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    /// Each profile read on its own (`RawProfile`).
    #[serde(default)]
    profile: BTreeMap<String, toml::Table>,
}

/// A `source` (Spin's `ComponentSource`): a path, `{ url, digest }` or
/// `{ registry?, package, version }`. This host runs local files only, but a
/// table Spin refuses is refused for that reason first.
const SOURCE_FORMS: &[Form] = &[
    ("url", read_as::<RawRemoteSource>),
    ("package", read_as::<RawRegistrySource>),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "checked for Spin compatibility; unused here")]
struct RawRemoteSource {
    url: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "checked for Spin compatibility; unused here")]
struct RawRegistrySource {
    registry: Option<String>,
    package: String,
    version: String,
}

/// An entry of `files` (Spin's `WasiFilesMount`): a glob, or `{ source, destination }`.
const FILES_FORMS: &[Form] = &[("source", read_as::<RawFilesPlacement>)];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
struct RawFilesPlacement {
    source: String,
    destination: String,
}

/// `[component.<id>.build]` (Spin's `ComponentBuildConfig`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "`spin build`'s; this host builds nothing")]
struct RawBuild {
    command: RawCommands,
    workdir: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code, reason = "`spin build`'s; this host builds nothing")]
enum RawCommands {
    Single(String),
    Multiple(Vec<String>),
}

/// `[component.<id>.profile.<name>]` (Spin's `ComponentProfileOverride`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "profiles are `spin build`/`spin up --profile`'s")]
struct RawProfile {
    source: Option<toml::Value>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    build: Option<toml::Table>,
}

/// `[component.<id>.profile.<name>.build]` (Spin's `ComponentProfileBuildOverride`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "profiles are `spin build`/`spin up --profile`'s")]
struct RawProfileBuild {
    command: RawCommands,
}

/// What a dependency's components inherit (`inherit_configuration`): all or
/// nothing, or the listed keys.
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
enum RawInherit {
    All(bool),
    Some(Vec<String>),
}

/// A dependency (Spin's `ComponentDependency`): a version requirement
/// (`">= 0.1.0"`) or one of these tables.
const DEPENDENCY_FORMS: &[Form] = &[
    ("path", read_as::<RawLocalDependency>),
    ("url", read_as::<RawHttpDependency>),
    ("component", read_as::<RawAppComponentDependency>),
    ("version", read_as::<RawPackageDependency>),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
struct RawLocalDependency {
    path: String,
    export: Option<String>,
    inherit_configuration: Option<RawInherit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
struct RawHttpDependency {
    url: String,
    digest: String,
    export: Option<String>,
    inherit_configuration: Option<RawInherit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
struct RawAppComponentDependency {
    component: String,
    export: Option<String>,
    inherit_configuration: Option<RawInherit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "accepted for Spin compatibility; unused here")]
struct RawPackageDependency {
    version: String,
    registry: Option<String>,
    package: Option<String>,
    export: Option<String>,
    inherit_configuration: Option<RawInherit>,
}

/// Reads `value` as a `T`, saying in which table (`what`) it failed.
fn read_table<T: serde::de::DeserializeOwned>(value: toml::Value, what: &str) -> Result<T> {
    value.try_into().with_context(|| format!("in {what}"))
}

fn read_as<T: serde::de::DeserializeOwned>(value: toml::Value, what: &str) -> Result<()> {
    read_table::<T>(value, what).map(drop)
}

/// A table form of a value Spin reads as an untagged enum: the key that
/// only that form has, and its reader.
type Form = (&'static str, fn(toml::Value, &str) -> Result<()>);

/// Checks `value` as Spin's untagged enums of a string and table forms, each
/// form denying the others' keys: Spin takes a table only when it fits one
/// form exactly, so a table is read as the form its distinguishing key
/// names, and a refusal names the unknown key (Spin's own message only says
/// that no form matched). `what` names the value.
fn check_form(value: toml::Value, what: &str, forms: &[Form]) -> Result<()> {
    let table = match value {
        toml::Value::String(_) => return Ok(()),
        toml::Value::Table(table) => table,
        other => bail!(
            "in {what}: expected a string or a table, not a {}",
            other.type_str()
        ),
    };
    let keys = || {
        forms
            .iter()
            .map(|(key, _)| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let Some((_, read)) = forms.iter().find(|(key, _)| table.contains_key(*key)) else {
        bail!("in {what}: a table here needs {}", keys());
    };
    read(toml::Value::Table(table), what)
}

/// Checks every entry of `values` (`what`, a list) with `check_form`.
fn check_forms(values: &[toml::Value], what: &str, forms: &[Form]) -> Result<()> {
    for (i, value) in values.iter().enumerate() {
        check_form(value.clone(), &format!("{what}[{i}]"), forms)?;
    }
    Ok(())
}

/// Checks the parts of component `id` that Spin reads strictly and this host
/// does not use: the source table, files, targets, build, dependencies, profiles.
fn check_component_tables(id: &str, raw: &RawComponent) -> Result<()> {
    let table = format!("[component.{id}]");
    check_form(raw.source.clone(), &format!("{table} source"), SOURCE_FORMS)?;
    check_forms(&raw.files, &format!("{table} files"), FILES_FORMS)?;
    if let Some(targets) = &raw.targets {
        check_forms(targets, &format!("{table} targets"), TARGET_FORMS)?;
    }
    if let Some(build) = &raw.build {
        read_as::<RawBuild>(
            toml::Value::Table(build.clone()),
            &format!("[component.{id}.build]"),
        )?;
    }
    for (name, dependency) in &raw.dependencies {
        let what = format!("[component.{id}.dependencies] {name:?}");
        check_form(dependency.clone(), &what, DEPENDENCY_FORMS)?;
        note_dependency(id, name);
    }
    for (name, profile) in &raw.profile {
        let table = format!("[component.{id}.profile.{name}]");
        let profile: RawProfile = read_table(toml::Value::Table(profile.clone()), &table)?;
        if let Some(source) = profile.source {
            check_form(source, &format!("{table} source"), SOURCE_FORMS)?;
        }
        for (dep, dependency) in profile.dependencies {
            let what = format!("[component.{id}.profile.{name}.dependencies] {dep:?}");
            check_form(dependency, &what, DEPENDENCY_FORMS)?;
        }
        if let Some(build) = profile.build {
            read_as::<RawProfileBuild>(
                toml::Value::Table(build),
                &format!("[component.{id}.profile.{name}.build]"),
            )?;
        }
    }
    Ok(())
}

/// The imports this host provides itself, which Spin needs dependencies for.
const NATIVE_IMPORTS: [&str; 2] = ["cromflag:iot/store", "cromflag:iot/pipeline"];

/// This host provides [`NATIVE_IMPORTS`] itself and ignores dependencies
/// naming them: its store is the one every component and the WebAPI share,
/// in one process with one writer, committed before an ack, and its
/// pipeline runs the sandboxed transforms `tool.cromflag` lists; a store
/// component (Spin's SQLite, GridDB over wasi:http) plugged into each
/// instance would bypass both. It composes no other dependency: a component
/// that imports one fails to link, and this says why beforehand.
fn note_dependency(id: &str, name: &str) {
    let interface = name
        .split_once('@')
        .map_or(name, |(interface, _)| interface);
    if NATIVE_IMPORTS.contains(&interface) {
        tracing::debug!(component = %id, dependency = %name, "provided natively; the dependency is for Spin");
    } else {
        tracing::warn!(component = %id, dependency = %name, "this host composes no dependency but {}: the component's import must be provided otherwise", NATIVE_IMPORTS.join(" and "));
    }
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<App> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // Absolute, so that component sources are too: the file watcher reports
    // changes by absolute path.
    let absolute =
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    let dir = absolute.parent().unwrap_or(Path::new("/"));
    parse(&text, dir, |name| std::env::var(name).ok())
        .with_context(|| format!("in {}", path.display()))
}

/// Parses manifest text; `dir` anchors relative paths and `env` looks up overrides.
pub fn parse(text: &str, dir: &Path, env: impl Fn(&str) -> Option<String>) -> Result<App> {
    // TOML first (a syntax error keeps its line), then Spin's top-level table.
    let document: toml::Table = toml::from_str(text)?;
    let raw: RawManifest = read_table(
        toml::Value::Table(document),
        "the manifest's top-level table",
    )?;
    if raw.spin_manifest_version != 2 {
        bail!(
            "spin_manifest_version must be 2, not {}",
            raw.spin_manifest_version
        );
    }

    let application: RawApplication =
        read_table(toml::Value::Table(raw.application), "[application]")?;
    check_forms(&application.targets, "[application] targets", TARGET_FORMS)?;

    let mut variables = BTreeMap::new();
    for (name, var) in raw.variables {
        check_variable_name(&name)?;
        let var: RawVariable = read_table(var, &format!("[variables] `{name}`"))?;
        if var.required && var.default.is_some() {
            bail!("variable `{name}` cannot be both required and have a default");
        }
        let value = env(&format!("SPIN_VARIABLE_{}", name.to_uppercase())).or(var.default);
        if var.required && value.is_none() {
            bail!(
                "variable `{name}` is required: set SPIN_VARIABLE_{}",
                name.to_uppercase()
            );
        }
        variables.insert(name, value);
    }
    let variables = Variables(variables);

    let mut components = BTreeMap::new();
    for (id, raw) in raw.component {
        check_component_id(&id)?;
        let raw: RawComponent = read_table(toml::Value::Table(raw), &format!("[component.{id}]"))?;
        check_component_tables(&id, &raw)?;
        let source = match &raw.source {
            toml::Value::String(path) => dir.join(path),
            _ => bail!("component `{id}`: only a local `source` path is supported"),
        };
        let allowed_outbound_hosts = raw
            .allowed_outbound_hosts
            .iter()
            .map(|entry| {
                let entry = variables
                    .expand(entry)
                    .with_context(|| format!("component `{id}`"))?;
                AllowedHost::parse(&entry).with_context(|| format!("component `{id}`"))
            })
            .collect::<Result<Vec<_>>>()?;
        let component_variables = raw
            .variables
            .iter()
            .map(|(name, template)| {
                check_variable_name(name)?;
                Ok((
                    name.clone(),
                    variables
                        .expand(template)
                        .with_context(|| format!("component `{id}`"))?,
                ))
            })
            .collect::<Result<_>>()?;
        let tool: RawToolSettings = match raw.tool.get("cromflag") {
            None => RawToolSettings::default(),
            Some(table) => toml::Value::Table(table.clone())
                .try_into()
                .with_context(|| format!("in [component.{id}.tool.cromflag]"))?,
        };
        let cron_catch_up = match tool.cron_catch_up.as_deref() {
            None => CatchUp::default(),
            Some("skip") => CatchUp::Skip,
            Some("latest") => CatchUp::Latest,
            Some("all") => CatchUp::All,
            Some(other) => bail!(
                "component `{id}`: cron_catch_up must be \"skip\", \"latest\" or \"all\", not {other:?}"
            ),
        };
        let defaults = TransformLimits::default();
        if tool
            .max_memory_bytes
            .is_some_and(|bytes| bytes > TransformLimits::MAX_MEMORY_BYTES)
        {
            bail!(
                "component `{id}`: max_memory_bytes may be at most {} (256 MiB)",
                TransformLimits::MAX_MEMORY_BYTES
            );
        }
        let spec = ComponentSpec {
            id: id.clone(),
            source,
            environment: raw.environment.into_iter().collect(),
            variables: component_variables,
            cron_catch_up,
            transforms: tool.transforms,
            transform_limits: TransformLimits {
                max_fuel: tool.max_fuel.unwrap_or(defaults.max_fuel),
                fuel_per_value: tool.fuel_per_value.unwrap_or(defaults.fuel_per_value),
                max_memory_bytes: tool.max_memory_bytes.unwrap_or(defaults.max_memory_bytes),
            },
            allowed_outbound_hosts,
        };
        components.insert(id, spec);
    }

    for spec in components.values() {
        for transform in &spec.transforms {
            if !components.contains_key(transform) {
                bail!(
                    "component `{}` lists transform `{transform}`, which is no [component.{transform}]",
                    spec.id
                );
            }
            if *transform == spec.id {
                bail!("component `{}` lists itself as a transform", spec.id);
            }
        }
    }

    let mut http_triggers = Vec::new();
    let mut mqtt_triggers = Vec::new();
    let mut cron_triggers: Vec<CronTriggerConfig> = Vec::new();
    let known = |component: &str, bound_to: &str| {
        if components.contains_key(component) {
            Ok(())
        } else {
            Err(anyhow!(
                "{bound_to} names undefined component `{component}`"
            ))
        }
    };
    for (kind, triggers) in raw.trigger {
        match kind.as_str() {
            "http" => {
                for table in triggers {
                    let trigger: RawHttpTrigger = toml::Value::Table(table)
                        .try_into()
                        .context("in [[trigger.http]]")?;
                    known(&trigger.component, &format!("route `{}`", trigger.route))?;
                    if let Some(RawHttpExecutor::Wagi(_)) = trigger.executor {
                        bail!(
                            "route `{}`: the wagi executor is not served by this host; use a wasi:http component",
                            trigger.route
                        );
                    }
                    http_triggers.push(HttpTriggerConfig {
                        route: trigger.route,
                        component: trigger.component,
                    });
                }
            }
            "mqtt" => {
                for table in triggers {
                    let trigger: RawMqttTrigger = toml::Value::Table(table)
                        .try_into()
                        .context("in [[trigger.mqtt]]")?;
                    known(&trigger.component, &format!("topic `{}`", trigger.topic))?;
                    let qos = match trigger.qos.as_deref().unwrap_or("0") {
                        "0" => 0,
                        "1" => 1,
                        "2" => 2,
                        other => bail!(
                            "topic `{}`: qos must be \"0\", \"1\" or \"2\", not {other:?}",
                            trigger.topic
                        ),
                    };
                    let topic = variables.expand(&trigger.topic)?;
                    mqtt_triggers.push(MqttTriggerConfig {
                        topic,
                        qos,
                        component: trigger.component,
                    });
                }
            }
            "cron" => {
                for table in triggers {
                    let trigger: RawCronTrigger = toml::Value::Table(table)
                        .try_into()
                        .context("in [[trigger.cron]]")?;
                    let name = trigger.id.unwrap_or_else(|| trigger.component.clone());
                    let what = format!("cron trigger `{name}`");
                    known(&trigger.component, &what)?;
                    if cron_triggers.iter().any(|t| t.name == name) {
                        bail!("{what} is declared twice: give each trigger of a component its own `id`");
                    }
                    let schedule = parse_cron(&trigger.cron_expression).map_err(|e| {
                        anyhow!(
                            "{what}: invalid cron_expression {:?}: {e}",
                            trigger.cron_expression
                        )
                    })?;
                    cron_triggers.push(CronTriggerConfig {
                        catch_up: components[&trigger.component].cron_catch_up,
                        name,
                        component: trigger.component,
                        expression: trigger.cron_expression,
                        schedule,
                    });
                }
            }
            _ => {
                tracing::warn!(trigger = %kind, count = triggers.len(), "trigger type not served by this host yet")
            }
        }
    }

    let http_base = match application.trigger.get("http").and_then(|t| t.get("base")) {
        None => "/".to_owned(),
        Some(toml::Value::String(base)) if base.starts_with('/') => base.clone(),
        Some(other) => {
            bail!("[application.trigger.http] base must be a path starting with `/`, not {other:?}")
        }
    };

    let mqtt = match application.trigger.get("mqtt") {
        None if mqtt_triggers.is_empty() => None,
        None => {
            bail!("[[trigger.mqtt]] needs a broker: set `address` in [application.trigger.mqtt]")
        }
        Some(table) => {
            let raw: RawMqttSettings = toml::Value::Table(table.clone())
                .try_into()
                .context("in [application.trigger.mqtt]")?;
            let expand = |v: Option<String>| v.map(|v| variables.expand(&v)).transpose();
            let keep_alive = expand(raw.keep_alive_interval)?.unwrap_or_else(|| "30".into());
            let file = |name: &str| {
                variables
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| dir.join(v))
            };
            Some(MqttSettings {
                tls: MqttTls {
                    ca_file: file("mqtt_tls_ca_file"),
                    cert_file: file("mqtt_tls_cert_file"),
                    key_file: file("mqtt_tls_key_file"),
                },
                address: variables.expand(&raw.address)?,
                username: expand(raw.username)?,
                password: expand(raw.password)?,
                keep_alive_secs: keep_alive.parse().with_context(|| {
                    format!("keep_alive_interval must be whole seconds, not {keep_alive:?}")
                })?,
            })
        }
    };

    let device_retention = match application
        .tool
        .get("cromflag")
        .and_then(|tool| tool.get("device_retention"))
    {
        None => BTreeMap::new(),
        Some(table) => table
            .clone()
            .try_into()
            .context("[application.tool.cromflag.device_retention] maps device ids to durations (\"7d\") or \"forever\"")?,
    };
    let alarms = match application
        .tool
        .get("cromflag")
        .and_then(|tool| tool.get("alarms"))
    {
        None => AlarmsConfig::default(),
        Some(table) => table
            .clone()
            .try_into()
            .context("in [application.tool.cromflag.alarms]")?,
    };
    Ok(App {
        name: application.name,
        http_base,
        http_triggers,
        mqtt,
        mqtt_triggers,
        cron_triggers,
        components,
        variables,
        device_retention,
        alarms,
    })
}

/// Whether `name` is a variable name as Spin's manifest takes it (a
/// lower-case snake_case identifier: see [`check_spin_id`]).
pub fn is_variable_name(name: &str) -> bool {
    check_spin_id(name, '_', true).is_ok()
}

fn check_variable_name(name: &str) -> Result<()> {
    check_spin_id(name, '_', true).map_err(|why| anyhow!("invalid variable name `{name}`: {why}"))
}

fn check_component_id(id: &str) -> Result<()> {
    check_spin_id(id, '-', false).map_err(|why| anyhow!("invalid component id `{id}`: {why}"))
}

/// Spin's identifiers, as its manifest parser (`spin_serde::id::Id`) checks
/// them, with its messages: one or more words separated by `delim` (`_` for
/// variable names, `-` for component ids), each an ASCII letter followed by
/// ASCII letters and digits, all of one case; `lower` (variable names) also
/// refuses upper-case words. So `price_per_1k_rows` is refused, as Spin
/// refuses it: its third word starts with a digit.
fn check_spin_id(id: &str, delim: char, lower: bool) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("empty".into());
    }
    let wrong = if delim == '_' { '-' } else { '_' };
    if id.contains(wrong) {
        return Err(format!(
            "words must be separated with {delim:?}, not {wrong:?}"
        ));
    }
    for word in id.split(delim) {
        let mut chars = word.chars();
        let Some(first) = chars.next() else {
            return Err(format!("{delim:?}-separated words must not be empty"));
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "{delim:?}-separated words must start with an ASCII letter; got {first:?}"
            ));
        }
        let upper = first.is_ascii_uppercase();
        for c in chars {
            if c.is_ascii_digit() {
                continue;
            }
            if !c.is_ascii_alphanumeric() {
                return Err(format!(
                    "{delim:?}-separated words may only contain alphanumeric ASCII; got {c:?}"
                ));
            }
            if c.is_ascii_uppercase() != upper {
                return Err(format!(
                    "{delim:?}-separated words must be all lowercase or all UPPERCASE; got {word:?}"
                ));
            }
        }
        if lower && upper {
            return Err(format!(
                "Lower-case identifiers must be all lowercase; got {id:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"

[variables]
region = { default = "eu" }
token = { required = true }

[[trigger.http]]
route = "/insert/..."
component = "insert"

[component.insert]
source = "wasm/insert.wasm"
environment = { LEVEL = "debug" }
variables = { where = "in {{ region }} with {{token}}" }

[component.insert.build]
command = "cargo build"
"#;

    fn env(name: &str) -> Option<String> {
        (name == "SPIN_VARIABLE_TOKEN").then(|| "t0k".to_owned())
    }

    #[test]
    fn reads_triggers_components_and_variables() {
        let app = parse(MANIFEST, Path::new("/app"), env).unwrap();
        assert_eq!(app.name, "demo");
        assert_eq!(app.http_base, "/");
        assert_eq!(
            app.http_triggers,
            [HttpTriggerConfig {
                route: "/insert/...".into(),
                component: "insert".into()
            }]
        );
        let insert = &app.components["insert"];
        assert_eq!(insert.source, Path::new("/app/wasm/insert.wasm"));
        assert_eq!(
            insert.environment,
            [("LEVEL".to_owned(), "debug".to_owned())]
        );
        assert_eq!(insert.variables["where"], "in eu with t0k");
        assert_eq!(app.variables.get("region"), Some("eu"));
    }

    #[test]
    fn transforms_are_listed_per_component_with_their_limits() {
        let text = format!(
            "{MANIFEST}\n[component.insert.tool.cromflag]\ntransforms = [\"f2c\", \"dew\"]\n\
             [component.f2c]\nsource = \"f2c.wasm\"\n\
             [component.dew]\nsource = \"dew.wasm\"\n\
             [component.dew.tool.cromflag]\nmax_fuel = 5\nfuel_per_value = 6\nmax_memory_bytes = 7\n"
        );
        let app = parse(&text, Path::new("/app"), env).unwrap();
        assert_eq!(app.components["insert"].transforms, ["f2c", "dew"]);
        assert_eq!(
            app.components["f2c"].transform_limits,
            TransformLimits::default()
        );
        assert_eq!(
            app.components["dew"].transform_limits,
            TransformLimits {
                max_fuel: 5,
                fuel_per_value: 6,
                max_memory_bytes: 7
            }
        );

        let unknown = text.replace("[\"f2c\", \"dew\"]", "[\"f2c\", \"nope\"]");
        let err = format!("{:#}", parse(&unknown, Path::new("/"), env).unwrap_err());
        assert!(err.contains("transform `nope`"), "{err}");
        let itself = text.replace("[\"f2c\", \"dew\"]", "[\"insert\"]");
        let err = format!("{:#}", parse(&itself, Path::new("/"), env).unwrap_err());
        assert!(err.contains("lists itself"), "{err}");
        let huge = text.replace("max_memory_bytes = 7", "max_memory_bytes = 1073741824");
        let err = format!("{:#}", parse(&huge, Path::new("/"), env).unwrap_err());
        assert!(err.contains("at most"), "{err}");
    }

    const CRON: &str = r#"
spin_manifest_version = 2

[application]
name = "reports"

[[trigger.cron]]
component = "report"
cron_expression = "0 5 0 * * *"

[[trigger.cron]]
id = "every-2s"
component = "report"
cron_expression = "1/2 * * * * *"

[component.report]
source = "report.wasm"

[component.report.tool.cromflag]
cron_catch_up = "all"
"#;

    #[test]
    fn reads_cron_triggers_as_spin_does() {
        let app = parse(CRON, Path::new("/app"), |_| None).unwrap();
        let [daily, every_2s] = &app.cron_triggers[..] else {
            panic!("two triggers expected, got {:?}", app.cron_triggers)
        };
        assert_eq!(
            (daily.name.as_str(), daily.catch_up),
            ("report", CatchUp::All)
        );
        assert_eq!(every_2s.name, "every-2s");
        let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let next = |trigger: &CronTriggerConfig, after: &str| {
            trigger
                .schedule
                .find_next_occurrence(&at(after), false)
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(
            next(daily, "2020-02-18T12:00:00Z"),
            "2020-02-19T00:05:00+00:00"
        );
        // "1/2": from second 1, every 2 seconds.
        assert_eq!(
            next(every_2s, "2020-02-18T12:00:00Z"),
            "2020-02-18T12:00:01+00:00"
        );
        assert_eq!(
            next(every_2s, "2020-02-18T12:00:01Z"),
            "2020-02-18T12:00:03+00:00"
        );
    }

    #[test]
    fn cron_weekdays_count_from_sunday_like_spins_scheduler() {
        let monday = parse_cron("0 0 0 * * 2").unwrap();
        let sunday_noon = chrono::DateTime::parse_from_rfc3339("2020-02-16T12:00:00Z")
            .unwrap()
            .to_utc();
        let next = monday.find_next_occurrence(&sunday_noon, false).unwrap();
        assert_eq!(next.to_rfc3339(), "2020-02-17T00:00:00+00:00");
        let by_name = parse_cron("0 0 0 * * MON").unwrap();
        assert_eq!(
            by_name.find_next_occurrence(&sunday_noon, false).unwrap(),
            next
        );
    }

    /// Spin's own rules and messages (`spin_serde::id`), one case per rule:
    /// a name Spin refuses must not start here.
    #[test]
    fn names_follow_spins_identifier_rules() {
        for name in ["a", "mqtt_address", "price_per_thousand_rows", "x2_y3z"] {
            assert_eq!(check_spin_id(name, '_', true), Ok(()), "{name}");
        }
        for id in [
            "insert",
            "dew-point",
            "fahrenheit-to-celsius",
            "API-v2",
            "s3",
        ] {
            assert_eq!(check_spin_id(id, '-', false), Ok(()), "{id}");
        }
        for (name, why) in [
            ("", "empty"),
            (
                "price_per_1k_rows",
                "'_'-separated words must start with an ASCII letter; got '1'",
            ),
            ("mqtt-address", "words must be separated with '_', not '-'"),
            ("a__b", "'_'-separated words must not be empty"),
            ("_a", "'_'-separated words must not be empty"),
            ("a_", "'_'-separated words must not be empty"),
            (
                "été",
                "'_'-separated words must start with an ASCII letter; got 'é'",
            ),
            (
                "a b",
                "'_'-separated words may only contain alphanumeric ASCII; got ' '",
            ),
            (
                "aB",
                "'_'-separated words must be all lowercase or all UPPERCASE; got \"aB\"",
            ),
            (
                "API_key",
                "Lower-case identifiers must be all lowercase; got \"API_key\"",
            ),
        ] {
            assert_eq!(
                check_spin_id(name, '_', true),
                Err(why.to_string()),
                "{name:?}"
            );
        }
        for (id, why) in [
            ("dew_point", "words must be separated with '-', not '_'"),
            (
                "2nd-store",
                "'-'-separated words must start with an ASCII letter; got '2'",
            ),
            (
                "Insert",
                "'-'-separated words must be all lowercase or all UPPERCASE; got \"Insert\"",
            ),
        ] {
            assert_eq!(
                check_spin_id(id, '-', false),
                Err(why.to_string()),
                "{id:?}"
            );
        }
    }

    #[test]
    fn a_manifest_spin_refuses_is_refused() {
        let with = |from: &str, to: &str| MANIFEST.replacen(from, to, 1);
        let variable = with(
            "[variables]",
            "[variables]\nprice_per_1k_rows = { default = \"1\" }",
        );
        let err = parse(&variable, Path::new("/app"), env).unwrap_err();
        assert!(
            format!("{err:#}").contains(
                "invalid variable name `price_per_1k_rows`: '_'-separated words must start with an ASCII letter; got '1'"
            ),
            "{err:#}"
        );
        let component = MANIFEST.replace("[component.insert", "[component.my_insert");
        let err = parse(&component, Path::new("/app"), env).unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid component id `my_insert`"),
            "{err:#}"
        );
    }

    /// Every key Spin 4.0.2's schema knows, in every table where it denies
    /// the others: all accepted (and those this host does not use, ignored).
    const EVERY_SPIN_KEY: &str = r#"
spin_manifest_version = 2

[application]
name = "every-key"
version = "1.0.0"
description = "all of Spin's keys"
authors = ["someone@example.com"]
targets = ["spin-up:3.3", { url = "https://example.com/env.toml" }, { path = "env.toml" }]
[application.trigger.http]
base = "/"
[application.tool.some-tool]
anything = 1

[variables]
region = { default = "eu", description = "where", secret = false }
token = { required = true, description = "a secret", secret = true }

[[trigger.http]]
id = "insert-route"
route = "/insert/..."
component = "insert"
executor = { type = "http" }

[[trigger.http]]
route = "/old/..."
component = "insert"
executor = { type = "spin" }

[component.insert]
source = "insert.wasm"
description = "the collector"
variables = { where = "{{ region }}" }
environment = { LEVEL = "debug" }
files = ["static/*.html", { source = "assets", destination = "/" }]
exclude_files = ["assets/secret.txt"]
allowed_http_hosts = ["example.com"]
allowed_outbound_hosts = ["http://127.0.0.1:8081", "https://*.example.com"]
key_value_stores = ["default"]
sqlite_databases = ["default", "my-db"]
ai_models = ["llama2-chat"]
targets = ["spin-up:3.3"]
dependencies_inherit_configuration = true
[component.insert.dependencies]
"cromflag:iot/store" = { path = "target/components/store.wasm" }
"cromflag:iot/pipeline" = { path = "pipeline.wasm", export = "cromflag:iot/pipeline@0.1.0", inherit_configuration = true }
"my:dep/registry" = { version = "0.1.0", registry = "registry.example.com", package = "my:impl", export = "my:impl/dep", inherit_configuration = ["allowed_outbound_hosts"] }
"my:dep/plain" = ">= 0.1.0"
"my:dep/url" = { url = "https://example.com/dep.wasm", digest = "sha256:0123", export = "my:dep/url" }
"my:dep/app" = { component = "other", export = "my:dep/app", inherit_configuration = false }
[component.insert.build]
command = ["cargo build", "wasm-tools validate insert.wasm"]
workdir = "components/insert"
watch = ["src/**/*.rs"]
[component.insert.profile.debug]
source = "debug/insert.wasm"
environment = { LEVEL = "trace" }
dependencies = { "cromflag:iot/store" = { path = "debug/store.wasm" } }
build.command = "cargo build"
[component.insert.tool.some-tool]
anything = 1

[component.other]
source = { url = "https://example.com/other.wasm", digest = "sha256:4567" }
[component.other.profile.registry]
source = { registry = "ttl.sh", package = "me:other", version = "1.0.0" }
"#;

    #[test]
    fn spins_known_keys_are_accepted() {
        let err = parse(EVERY_SPIN_KEY, Path::new("/app"), env).unwrap_err();
        // Everything is read; only the remote source is then refused, as this
        // host runs local files only.
        assert_eq!(
            format!("{err:#}"),
            "component `other`: only a local `source` path is supported"
        );
        let local = local_keys();
        let app = parse(&local, Path::new("/app"), env).unwrap();
        assert_eq!(app.name, "every-key");
        assert_eq!(app.http_triggers.len(), 2);
        assert_eq!(app.components["insert"].variables["where"], "eu");
        // The dependency table the repository's spin.toml will have.
        let store = "[component.fetch]\nsource = \"fetch.wasm\"\n\
                     dependencies_inherit_configuration = true\n\
                     allowed_outbound_hosts = [\"http://127.0.0.1:8081\"]\n\
                     [component.fetch.dependencies]\n\
                     \"cromflag:iot/store\" = { path = \"target/portable/griddb_store.wasm\" }\n";
        parse(&format!("{local}{store}"), Path::new("/app"), env).unwrap();
    }

    /// `text` with `from` replaced by `to` must be refused with a message
    /// naming `key` and `table`.
    #[track_caller]
    fn refused(text: &str, from: &str, to: &str, key: &str, table: &str) {
        assert!(text.contains(from), "{from:?} is not in the manifest");
        let changed = text.replacen(from, to, 1);
        let err = match parse(&changed, Path::new("/app"), env) {
            Ok(_) => panic!("`{key}` in {table} was accepted"),
            Err(err) => format!("{err:#}"),
        };
        assert!(
            err.contains(&format!("in {table}")) && err.contains(&format!("`{key}`")),
            "`{key}` in {table}: {err}"
        );
    }

    /// `EVERY_SPIN_KEY` with local sources only, as this host runs it.
    fn local_keys() -> String {
        EVERY_SPIN_KEY.replace(
            "{ url = \"https://example.com/other.wasm\", digest = \"sha256:4567\" }",
            "\"other.wasm\"",
        )
    }

    #[test]
    fn unknown_keys_are_refused_in_the_top_level_and_application_tables() {
        let text = local_keys();
        refused(
            &text,
            "spin_manifest_version = 2",
            "spin_manifest_version = 2\nspin_version = \"1\"",
            "spin_version",
            "the manifest's top-level table",
        );
        refused(
            &text,
            "name = \"every-key\"",
            "name = \"every-key\"\nlicense = \"MIT\"",
            "license",
            "[application]",
        );
        refused(
            &text,
            "{ path = \"env.toml\" }",
            "{ path = \"env.toml\", name = \"x\" }",
            "name",
            "[application] targets[2]",
        );
    }

    #[test]
    fn unknown_keys_are_refused_in_variables() {
        refused(
            &local_keys(),
            "{ default = \"eu\", description = \"where\", secret = false }",
            "{ default = \"eu\", secret = false, sensitive = true }",
            "sensitive",
            "[variables] `region`",
        );
    }

    #[test]
    fn unknown_keys_are_refused_in_components() {
        let text = local_keys();
        refused(
            &text,
            "description = \"the collector\"",
            "description = \"the collector\"\nallowed_hosts = []",
            "allowed_hosts",
            "[component.insert]",
        );
        refused(
            &text,
            "{ source = \"assets\", destination = \"/\" }",
            "{ source = \"assets\", destination = \"/\", mode = \"ro\" }",
            "mode",
            "[component.insert] files[1]",
        );
        refused(
            &text,
            "targets = [\"spin-up:3.3\"]",
            "targets = [{ url = \"https://example.com/e.toml\", digest = \"x\" }]",
            "digest",
            "[component.insert] targets[0]",
        );
        refused(
            &text,
            "source = { registry = \"ttl.sh\", package = \"me:other\", version = \"1.0.0\" }",
            "source = { registry = \"ttl.sh\", package = \"me:other\", version = \"1.0.0\", digest = \"x\" }",
            "digest",
            "[component.other.profile.registry] source",
        );
        let remote = text.replace(
            "[component.other]\nsource = \"other.wasm\"",
            "[component.other]\nsource = { url = \"https://e.com/o.wasm\", digest = \"sha256:1\", sha = \"1\" }",
        );
        refused(
            &remote,
            "sha = \"1\"",
            "sha = \"1\"",
            "sha",
            "[component.other] source",
        );
    }

    #[test]
    fn unknown_keys_are_refused_in_build_and_profile_tables() {
        let text = local_keys();
        refused(
            &text,
            "workdir = \"components/insert\"",
            "workdir = \"components/insert\"\nenv = {}",
            "env",
            "[component.insert.build]",
        );
        refused(
            &text,
            "environment = { LEVEL = \"trace\" }",
            "environment = { LEVEL = \"trace\" }\nvariables = {}",
            "variables",
            "[component.insert.profile.debug]",
        );
        refused(
            &text,
            "build.command = \"cargo build\"",
            "build.command = \"cargo build\"\nbuild.workdir = \"x\"",
            "workdir",
            "[component.insert.profile.debug.build]",
        );
        refused(
            &text,
            "{ path = \"debug/store.wasm\" }",
            "{ path = \"debug/store.wasm\", digest = \"x\" }",
            "digest",
            "[component.insert.profile.debug.dependencies] \"cromflag:iot/store\"",
        );
    }

    /// Each of Spin's dependency forms refuses the keys of the others, and a
    /// table without a form's key is no dependency.
    #[test]
    fn dependencies_take_spins_forms_only() {
        let text = local_keys();
        let table = "[component.insert.dependencies]";
        for (from, to, key) in [
            (
                "{ path = \"target/components/store.wasm\" }",
                "{ path = \"target/components/store.wasm\", version = \"1\" }",
                "version",
            ),
            (
                "{ path = \"target/components/store.wasm\" }",
                "{ path = \"target/components/store.wasm\", inherit = true }",
                "inherit",
            ),
            (
                "registry = \"registry.example.com\"",
                "registry = \"registry.example.com\", path = \"x.wasm\"",
                // Read as the `path` form, whose first unknown key this is.
                "package",
            ),
            (
                "registry = \"registry.example.com\"",
                "registry = \"registry.example.com\", digest = \"x\"",
                "digest",
            ),
            (
                "digest = \"sha256:0123\"",
                "digest = \"sha256:0123\", package = \"my:impl\"",
                "package",
            ),
            (
                "{ component = \"other\"",
                "{ component = \"other\", registry = \"r\"",
                "registry",
            ),
        ] {
            let dependency = [
                "\"cromflag:iot/store\"",
                "\"my:dep/registry\"",
                "\"my:dep/url\"",
                "\"my:dep/app\"",
            ]
            .into_iter()
            .find(|name| {
                text.lines()
                    .any(|line| line.starts_with(name) && line.contains(from))
            })
            .unwrap();
            refused(&text, from, to, key, &format!("{table} {dependency}"));
        }
        let formless = text.replace(
            "{ path = \"target/components/store.wasm\" }",
            "{ export = \"cromflag:iot/store\" }",
        );
        let err = format!(
            "{:#}",
            parse(&formless, Path::new("/app"), env).unwrap_err()
        );
        assert!(
            err.contains("[component.insert.dependencies] \"cromflag:iot/store\"")
                && err.contains("`path` or `url` or `component` or `version`"),
            "{err}"
        );
    }

    /// Trigger tables and tool tables are free-form in Spin's schema: each
    /// trigger reads its own (ours deny what Spin's HTTP, MQTT and cron
    /// triggers deny).
    #[test]
    fn trigger_settings_and_tool_tables_stay_open() {
        let text = local_keys().replace("anything = 1", "anything = 1\nmore = \"x\"");
        let settings = text.replace(
            "[application.trigger.http]\nbase = \"/\"",
            "[application.trigger.http]\nbase = \"/\"\n[application.trigger.redis]\naddress = \"redis://x\"",
        );
        parse(&settings, Path::new("/app"), env).unwrap();
        refused(
            &text,
            "executor = { type = \"http\" }",
            "executor = { type = \"http\" }\nmethod = \"GET\"",
            "method",
            "[[trigger.http]]",
        );
        let wagi = text.replace("{ type = \"spin\" }", "{ type = \"wagi\" }");
        let err = format!("{:#}", parse(&wagi, Path::new("/app"), env).unwrap_err());
        assert!(err.contains("wagi executor"), "{err}");
    }

    /// The repository's own manifest passes Spin's rules.
    #[test]
    fn the_repositorys_manifest_is_valid() {
        let text = include_str!("../../spin.toml");
        parse(text, Path::new("/repo"), |_| None).unwrap();
    }

    #[test]
    fn a_malformed_cron_expression_names_its_trigger() {
        for bad in ["0 5 0 * *", "0 61 0 * * *", "every day", "0 5 0 * * * * *"] {
            let manifest = CRON.replace("1/2 * * * * *", bad);
            let err = format!(
                "{:#}",
                parse(&manifest, Path::new("/"), |_| None).unwrap_err()
            );
            assert!(
                err.contains("every-2s") && err.contains(bad),
                "{bad}: {err}"
            );
        }
        let policy = CRON.replace("\"all\"", "\"sometimes\"");
        let err = format!(
            "{:#}",
            parse(&policy, Path::new("/"), |_| None).unwrap_err()
        );
        assert!(err.contains("cron_catch_up"), "{err}");
        let twice = CRON.replace("id = \"every-2s\"\n", "");
        let err = format!("{:#}", parse(&twice, Path::new("/"), |_| None).unwrap_err());
        assert!(err.contains("declared twice"), "{err}");
    }

    #[test]
    fn rejects_what_spin_rejects() {
        assert!(parse(MANIFEST, Path::new("/app"), |_| None)
            .unwrap_err()
            .to_string()
            .contains("token"));
        let undefined = MANIFEST.replace("component = \"insert\"", "component = \"nope\"");
        assert!(parse(&undefined, Path::new("/"), env).is_err());
        let version = MANIFEST.replace("= 2", "= 1");
        assert!(parse(&version, Path::new("/"), env).is_err());
        let bad_template = MANIFEST.replace("{{ region }}", "{{ nowhere }}");
        assert!(format!(
            "{:#}",
            parse(&bad_template, Path::new("/"), env).unwrap_err()
        )
        .contains("nowhere"));
    }
}
