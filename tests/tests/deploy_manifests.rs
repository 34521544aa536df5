//! `deploy/` renders with `kubectl kustomize` (base and both overlays), every object
//! parses into its Kubernetes type without losing a field, the embedded configs parse with the
//! binaries' own strict loaders, and the RBAC rules grant exactly the API calls the extender
//! makes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sparkgang_extender::api_calls::API_CALLS;
use sparkgang_extender::config::ExtenderConfig;

fn repo() -> PathBuf {
    sparkgang_tests::repo_root()
}

fn kustomize(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir)
        .output()
        .expect("kubectl must be installed (scripts/test.sh checks for it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_yaml::Value = serde_yaml::Value::deserialize(doc).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Parses `v` as `T` and back; the result must equal the input (no field dropped or renamed).
fn round_trip<T: DeserializeOwned + serde::Serialize>(v: &Value) {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &strip_nulls(back),
        &strip_nulls(v.clone()),
        "lost fields in {}",
        id(v)
    );
}

/// Drops `null`s and writes integral numbers one way (`0.0` and `0` are the same number).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) =>
        {
            Value::from(n.as_f64().unwrap_or_default() as i64)
        }
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn id(v: &Value) -> String {
    format!(
        "{}/{}",
        v["kind"].as_str().unwrap_or("?"),
        v["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// cert-manager's types are not in k8s-openapi: these mirror the fields deploy/ may use, and
/// reject any other.
mod cert_manager {
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct Object<S> {
        pub api_version: String,
        pub kind: String,
        pub metadata: Value,
        pub spec: S,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct IssuerSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub self_signed: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ca: Option<CaIssuer>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CaIssuer {
        pub secret_name: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CertificateSpec {
        pub secret_name: String,
        #[serde(rename = "isCA", skip_serializing_if = "Option::is_none")]
        pub is_ca: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub common_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub renew_before: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub dns_names: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub usages: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub private_key: Option<PrivateKey>,
        pub issuer_ref: IssuerRef,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct PrivateKey {
        pub algorithm: String,
        pub size: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rotation_policy: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct IssuerRef {
        pub kind: String,
        pub name: String,
    }
}

/// kustomize wraps long base64 values (Secret data, caBundle) over several lines; Kubernetes
/// (Go's base64 decoder) ignores the line breaks, k8s-openapi does not: join them first.
fn unwrap_base64(mut o: Value) -> Value {
    if let Some(data) = o.get_mut("data").and_then(Value::as_object_mut) {
        for v in data.values_mut() {
            if let Some(s) = v.as_str() {
                *v = Value::from(s.replace(['\n', '\r'], ""));
            }
        }
    }
    if let Some(hooks) = o.get_mut("webhooks").and_then(Value::as_array_mut) {
        for h in hooks {
            if let Some(b) = h.pointer_mut("/clientConfig/caBundle")
                && let Some(s) = b.as_str()
            {
                *b = Value::from(s.replace(['\n', '\r'], ""));
            }
        }
    }
    o
}

fn check_objects(objects: &[Value]) {
    for o in objects {
        let o = &unwrap_base64(o.clone());
        match o["kind"].as_str().unwrap_or("") {
            "Namespace" => round_trip::<Namespace>(o),
            "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(o),
            "ServiceAccount" => round_trip::<ServiceAccount>(o),
            "ConfigMap" => round_trip::<ConfigMap>(o),
            "Secret" => round_trip::<Secret>(o),
            "Deployment" => round_trip::<Deployment>(o),
            "Service" => round_trip::<Service>(o),
            "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(o),
            "MutatingWebhookConfiguration" => round_trip::<MutatingWebhookConfiguration>(o),
            "ClusterRole" => round_trip::<ClusterRole>(o),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(o),
            "Role" => round_trip::<Role>(o),
            "RoleBinding" => round_trip::<RoleBinding>(o),
            "Issuer" => round_trip::<cert_manager::Object<cert_manager::IssuerSpec>>(o),
            "Certificate" => round_trip::<cert_manager::Object<cert_manager::CertificateSpec>>(o),
            other => panic!("deploy/ renders a {other} that this test does not check: add it"),
        }
    }
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in deploy/"))
}

#[test]
fn base_renders_and_every_object_is_well_typed() {
    let objects = kustomize(&repo().join("deploy"));
    check_objects(&objects);
    for o in &objects {
        if o["kind"] != "Namespace"
            && !o["kind"].as_str().unwrap_or("").starts_with("Cluster")
            && o["kind"] != "CustomResourceDefinition"
            && o["kind"] != "MutatingWebhookConfiguration"
            && o["metadata"]["name"] != "sparkgang-kube-scheduler-authentication-reader"
        {
            assert_eq!(o["metadata"]["namespace"], "sparkgang-system", "{}", id(o));
        }
    }
    let hook = find(
        &objects,
        "MutatingWebhookConfiguration",
        "sparkgang-webhook",
    );
    assert_eq!(
        hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "sparkgang-system/sparkgang-webhook"
    );
    let w = &hook["webhooks"][0];
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["timeoutSeconds"], 5);
    assert_eq!(w["reinvocationPolicy"], "IfNeeded");
    assert_eq!(
        w["objectSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["driver", "executor"])
    );
}

/// `kubectl sparkgang` reaches the explain listener through the Service it names, by port name
/// (kube-apiserver's proxy matches endpoint ports by name), and the Service leads to the port
/// the extender's config listens on.
#[test]
fn the_explain_service_is_the_one_the_plugin_names() {
    use sparkgang_common::api::explain::{
        EXPLAIN_SERVICE_NAME, EXPLAIN_SERVICE_NAMESPACE, EXPLAIN_SERVICE_PORT,
    };
    let objects = kustomize(&repo().join("deploy"));
    let svc = find(&objects, "Service", EXPLAIN_SERVICE_NAME);
    assert_eq!(svc["metadata"]["namespace"], EXPLAIN_SERVICE_NAMESPACE);
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], EXPLAIN_SERVICE_PORT);
    let deployment = find(&objects, "Deployment", "spark-scheduler");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let extender = containers.iter().find(|c| c["name"] == "extender").unwrap();
    let target = extender["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"])
        .expect("the Service's targetPort names a port of the extender");
    let cm = find(&objects, "ConfigMap", "spark-scheduler-config");
    let config = ExtenderConfig::from_yaml(
        cm["data"]["extender-config.yaml"].as_str().unwrap(),
        "deploy extender-config.yaml",
    )
    .unwrap();
    let listen = config
        .explain
        .listen_address
        .expect("deploy/ runs the explain listener");
    assert_eq!(target["containerPort"], listen.port());
    assert_eq!(
        config.explain.authentication,
        sparkgang_extender::config::ExplainAuthentication::Kubernetes
    );
}

#[test]
fn embedded_configs_parse_with_the_strict_loaders() {
    let objects = kustomize(&repo().join("deploy"));
    let cm = find(&objects, "ConfigMap", "spark-scheduler-config");
    let extender = cm["data"]["extender-config.yaml"].as_str().unwrap();
    let config = ExtenderConfig::from_yaml(extender, "deploy extender-config.yaml").unwrap();
    // The simulator's strict type: the configuration it runs is the one deploy/ installs.
    let scheduler: sparkgang_sim::deploy_config::KubeSchedulerConfiguration =
        serde_yaml::from_str(cm["data"]["scheduler-config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(scheduler.api_version, "kubescheduler.config.k8s.io/v1");
    assert_eq!(scheduler.profiles[0].scheduler_name, config.scheduler_name);
    let ext = &scheduler.extenders[0];
    assert_eq!(
        ext.url_prefix,
        format!("http://{}", config.filter_listen_address)
    );
    assert_eq!(ext.filter_verb, "filter");
    // The extender serves POST /preempt (extender/src/preempt.rs).
    assert_eq!(ext.preempt_verb.as_deref(), Some("preempt"));
    assert!(ext.node_cache_capable && !ext.ignorable);
    assert_eq!(scheduler.percentage_of_nodes_to_score, Some(100));
}

fn rules_by_resource(rules: &[PolicyRule]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                out.entry((g.clone(), res.clone()))
                    .or_default()
                    .extend(r.verbs.iter().cloned());
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_what_the_extender_calls() {
    let objects = kustomize(&repo().join("deploy"));
    let cluster: ClusterRole =
        serde_json::from_value(find(&objects, "ClusterRole", "sparkgang-extender").clone())
            .unwrap();
    let role: Role =
        serde_json::from_value(find(&objects, "Role", "sparkgang-leases").clone()).unwrap();
    let granted_cluster = rules_by_resource(cluster.rules.as_deref().unwrap_or(&[]));
    let granted_namespace = rules_by_resource(role.rules.as_deref().unwrap_or(&[]));
    let mut wanted_cluster = BTreeMap::new();
    let mut wanted_namespace = BTreeMap::new();
    for call in API_CALLS {
        let target = if call.own_namespace_only {
            &mut wanted_namespace
        } else {
            &mut wanted_cluster
        };
        target.insert(
            (call.group.to_owned(), call.resource.to_owned()),
            call.verbs
                .iter()
                .map(|v| v.to_string())
                .collect::<BTreeSet<_>>(),
        );
    }
    assert_eq!(
        granted_cluster, wanted_cluster,
        "ClusterRole sparkgang-extender vs API_CALLS"
    );
    assert_eq!(
        granted_namespace, wanted_namespace,
        "Role sparkgang-leases vs API_CALLS"
    );
    // Nothing is bound to cluster-admin (palantir's example was).
    for o in &objects {
        if o["kind"].as_str().is_some_and(|k| k.ends_with("Binding")) {
            assert_ne!(o["roleRef"]["name"], "cluster-admin", "{}", id(o));
        }
    }
}

#[test]
fn rbac_grants_exactly_what_the_webhook_calls() {
    let objects = kustomize(&repo().join("deploy"));
    let cluster: ClusterRole =
        serde_json::from_value(find(&objects, "ClusterRole", "sparkgang-webhook").clone()).unwrap();
    let granted = rules_by_resource(cluster.rules.as_deref().unwrap_or(&[]));
    let wanted: BTreeMap<(String, String), BTreeSet<String>> =
        sparkgang_admission::drivers::API_CALLS
            .iter()
            .map(|(group, resource, verbs)| {
                (
                    (group.to_string(), resource.to_string()),
                    verbs.iter().map(|v| v.to_string()).collect(),
                )
            })
            .collect();
    assert_eq!(
        granted, wanted,
        "ClusterRole sparkgang-webhook vs drivers::API_CALLS"
    );
    let binding = find(&objects, "ClusterRoleBinding", "sparkgang-webhook");
    assert_eq!(binding["subjects"][0]["name"], "sparkgang-webhook");
    assert_eq!(binding["subjects"][0]["namespace"], "sparkgang-system");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn self_signed_overlay_renders_with_the_ca_certificate_only() {
    let dir = std::env::temp_dir().join(format!("sparkgang-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&repo().join("deploy"), &dir);
    let pki =
        sparkgang_certs::TestPki::for_service("sparkgang-webhook", "sparkgang-system").unwrap();
    std::fs::write(dir.join("overlays/self-signed/ca.crt"), pki.ca_cert_pem()).unwrap();
    let objects = kustomize(&dir.join("overlays/self-signed"));
    check_objects(&objects);
    assert!(
        objects.iter().all(|o| !o["apiVersion"]
            .as_str()
            .unwrap_or("")
            .starts_with("cert-manager.io")),
        "the overlay must not need cert-manager"
    );
    // The serving key is never in a file the overlay reads: its Secret comes from
    // `sparkgang-certs secret | kubectl apply -f -`, and the CA source is local-config.
    assert!(
        objects.iter().all(|o| o["kind"] != "Secret"),
        "the overlay renders a Secret"
    );
    let objects: Vec<Value> = objects.into_iter().map(unwrap_base64).collect();
    let hook = find(
        &objects,
        "MutatingWebhookConfiguration",
        "sparkgang-webhook",
    );
    assert!(
        hook["metadata"]["annotations"]
            .get("cert-manager.io/inject-ca-from")
            .is_none()
    );
    use base64::Engine;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(
            hook["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(String::from_utf8(bundle).unwrap(), pki.ca_cert_pem());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cert_manager_overlay_is_deploy_itself() {
    assert_eq!(
        kustomize(&repo().join("deploy/overlays/cert-manager")),
        kustomize(&repo().join("deploy"))
    );
}

#[test]
fn spark_namespace_example_opts_in_with_a_driver_service_account() {
    let text =
        std::fs::read_to_string(repo().join("deploy/examples/spark-namespace.yaml")).unwrap();
    let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect();
    check_objects(&objects);
    let ns = find(&objects, "Namespace", "spark");
    // The label the webhook's namespaceSelector matches.
    let hook = kustomize(&repo().join("deploy"));
    let selector = &find(&hook, "MutatingWebhookConfiguration", "sparkgang-webhook")["webhooks"][0]
        ["namespaceSelector"]["matchExpressions"][0];
    let key = selector["key"].as_str().unwrap();
    assert_eq!(ns["metadata"]["labels"][key], selector["values"][0]);
    let binding = find(&objects, "RoleBinding", "spark-driver");
    assert_eq!(binding["subjects"][0]["name"], "spark");
    assert_eq!(binding["metadata"]["namespace"], "spark");
    find(&objects, "ServiceAccount", "spark");
}
