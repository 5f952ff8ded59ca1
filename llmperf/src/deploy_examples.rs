//! The deploy examples (`llmperf/deploy/`) run the current CLI: every
//! llmperf command line in the Kubernetes manifests and Slurm scripts is
//! parsed as `llmperf` would parse it, so an example that drifts from the
//! CLI fails here.

use std::collections::HashMap;

use clap::Parser;
use yaml_rust2::{Yaml, YamlLoader};

use super::{shard_of, Cli, Command};

/// Values the scheduler or the person applying the example fills in.
fn sample(name: &str) -> Option<&'static str> {
    Some(match name {
        "RUN_ID" => "20261203-100000",
        "START_AT" => "2026-12-03T10:00:00Z",
        "JOB_COMPLETION_INDEX" | "SLURM_ARRAY_TASK_ID" => "2",
        "SLURM_ARRAY_TASK_COUNT" => "4",
        "RESULTS" => "/shared/llmperf-results/20261203T100000Z",
        _ => return None,
    })
}

/// `text` with `${NAME}`, `${NAME:-default}`, `$NAME` (shell, envsubst)
/// and `$(NAME)` (Kubernetes) filled in from [`sample`].
fn expand(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (inner, tail) = if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').expect("a closed ${…}");
            (&body[..end], &body[end + 1..])
        } else if let Some(body) = after.strip_prefix('(') {
            let end = body.find(')').expect("a closed $(…)");
            (&body[..end], &body[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let value = sample(name)
            .or(default)
            .unwrap_or_else(|| panic!("the example uses ${name}, which the test does not fill in"));
        out.push_str(value);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Parses one llmperf command line as the binary does, and checks what
/// the binary checks before running: the load, and the shard flags (with
/// the scheduler's environment filled in).
fn accepts(args: &[String], environment: &HashMap<&str, &str>) -> Command {
    let cli =
        Cli::try_parse_from(std::iter::once("llmperf".to_string()).chain(args.iter().cloned()))
            .unwrap_or_else(|error| panic!("llmperf {args:?} is refused:\n{error}"));
    if let Command::Run(run) = &cli.command {
        run.load.load().unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let lookup = |name: &str| environment.get(name).map(|v| v.to_string());
        let shard = shard_of(run.shard.as_deref(), run.shards, lookup)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(shard.is_some(), "{args:?} runs no shard");
    }
    cli.command
}

fn manifest(name: &str) -> Vec<Yaml> {
    let path = format!("{}/deploy/kubernetes/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each llmperf container's arguments in a manifest's Job, with the Job.
fn containers(documents: &[Yaml]) -> Vec<(&Yaml, Vec<String>)> {
    let mut found = Vec::new();
    for job in documents
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Job"))
    {
        // A Job's name is a DNS label (its pods carry it as a label value).
        let name = expand(job["metadata"]["name"].as_str().expect("a named Job"));
        assert!(
            name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "`{name}` is not a valid Job name"
        );
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        for container in pod["containers"].as_vec().into_iter().flatten() {
            let image = container["image"].as_str().unwrap_or("");
            if !image.starts_with("llmperf") {
                continue;
            }
            let args = container["args"]
                .as_vec()
                .expect("an llmperf container lists its args")
                .iter()
                .map(|arg| expand(arg.as_str().expect("args are strings")))
                .collect();
            found.push((job, args));
        }
    }
    found
}

#[test]
fn the_kubernetes_indexed_job_runs_every_shard_and_the_merge_merges_them() {
    let documents = manifest("llmperf-shards.yaml");
    let shards = containers(&documents);
    assert_eq!(shards.len(), 1, "one shard container");
    let (job, args) = &shards[0];
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_i64().expect("completions");
    assert_eq!(
        spec["parallelism"].as_i64(),
        Some(completions),
        "every shard at once"
    );
    let environment = HashMap::from([("JOB_COMPLETION_INDEX", "2")]);
    let Command::Run(run) = accepts(args, &environment) else {
        panic!("the shards run `llmperf run`: {args:?}");
    };
    assert_eq!(
        run.shards.map(i64::from),
        Some(completions),
        "--shards is the Job's completions"
    );
    assert!(run.start_at.is_some(), "the shards start together");
    let results = run.results_dir.expect("each shard writes its results");
    assert!(results.ends_with("shard-2"), "{}", results.display());
    // Keys come from the Secret, never from arguments.
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert!(container["envFrom"][0]["secretRef"]["name"]
        .as_str()
        .is_some());
    assert!(
        !args.iter().any(|a| a.to_ascii_lowercase().contains("key")),
        "{args:?}"
    );

    let merge = manifest("llmperf-merge.yaml");
    let merges = containers(&merge);
    assert_eq!(merges.len(), 1);
    let Command::Merge(merge) = accepts(&merges[0].1, &HashMap::new()) else {
        panic!("the merge Job runs `llmperf merge`");
    };
    assert_eq!(
        merge.shards,
        [results.parent().unwrap().to_path_buf()],
        "it merges the shards' parent"
    );
}

/// The llmperf command lines of a shell script (continuation lines joined).
fn script_commands(name: &str) -> Vec<Vec<String>> {
    let path = format!("{}/deploy/slurm/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("llmperf "))
        .map(|line| {
            let words = shlex::split(line).unwrap_or_else(|| panic!("{path}: cannot split {line}"));
            words[1..].iter().map(|w| expand(w)).collect()
        })
        .collect()
}

#[test]
fn the_slurm_array_runs_every_shard_and_the_merge_merges_them() {
    let path = format!(
        "{}/deploy/slurm/llmperf-array.sh",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let array = text
        .lines()
        .find_map(|line| line.strip_prefix("#SBATCH --array="))
        .expect("an array job");
    assert_eq!(array, "0-3");
    let commands = script_commands("llmperf-array.sh");
    assert_eq!(commands.len(), 1);
    let environment = HashMap::from([
        ("SLURM_ARRAY_TASK_ID", "2"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "3"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ]);
    let Command::Run(run) = accepts(&commands[0], &environment) else {
        panic!("the array runs `llmperf run`");
    };
    assert!(run.start_at.is_some());
    let results = run.results_dir.expect("each shard writes its results");
    let merges = script_commands("llmperf-merge.sh");
    assert_eq!(merges.len(), 1);
    let Command::Merge(merge) = accepts(&merges[0], &HashMap::new()) else {
        panic!("the merge script runs `llmperf merge`");
    };
    assert_eq!(merge.shards, [results.parent().unwrap().to_path_buf()]);
}

#[test]
fn a_drifted_command_line_is_caught() {
    let args: Vec<String> = ["run", "--shards=4", "--concurency=8"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let refused = std::panic::catch_unwind(|| {
        accepts(&args, &HashMap::from([("JOB_COMPLETION_INDEX", "0")]))
    });
    assert!(refused.is_err());
}
