//! `--config-file FILE`: a subcommand's flags from a TOML file, as
//! Lighthouse's `--config-file` reads them: `flag-name = value` (the long
//! name or an alias, without dashes), a list for a flag given several
//! times, `true` for a switch. The command line wins over the environment
//! (`DVNODE_…`), which wins over the file; the file's values go through
//! the same parser as the command line's, so a bad one is refused with the
//! flag's name (and the file's).

use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;

/// The flag naming the file.
const FLAG: &str = "config-file";

#[derive(Debug)]
pub enum ParseError {
    /// The command line itself (clap prints it, with usage).
    Clap(clap::Error),
    /// The file, or a value from it.
    Config(String),
}

/// Parses `args` (the program name first), with the flags of the
/// subcommand's `--config-file` (or its environment variable) added.
pub fn parse_args<C: Parser>(args: Vec<OsString>) -> Result<C, ParseError> {
    let command = C::command();
    let Some(name) = args.get(1).and_then(|a| a.to_str()) else {
        return C::try_parse_from(args).map_err(ParseError::Clap);
    };
    let Some(sub) = command.find_subcommand(name) else {
        return C::try_parse_from(args).map_err(ParseError::Clap);
    };
    let Some(file_arg) = sub.get_arguments().find(|a| a.get_long() == Some(FLAG)) else {
        return C::try_parse_from(args).map_err(ParseError::Clap);
    };
    let given: Vec<&str> = args[2..].iter().filter_map(|a| a.to_str()).collect();
    let from_args = given.iter().enumerate().find_map(|(i, a)| {
        let flag = format!("--{FLAG}");
        if *a == flag {
            given.get(i + 1).map(PathBuf::from)
        } else {
            a.strip_prefix(&format!("{flag}=")).map(PathBuf::from)
        }
    });
    let from_env = file_arg
        .get_env()
        .and_then(std::env::var_os)
        .map(PathBuf::from);
    let Some(path) = from_args.or(from_env) else {
        return C::try_parse_from(args).map_err(ParseError::Clap);
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ParseError::Config(format!("--{FLAG} {shown}: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| ParseError::Config(format!("--{FLAG} {shown}: not TOML: {e}")))?;
    let mut added: Vec<OsString> = Vec::new();
    let mut keys = Vec::new();
    for (key, value) in &table {
        let arg = sub
            .get_arguments()
            .find(|a| {
                a.get_long_and_visible_aliases()
                    .is_some_and(|names| names.contains(&key.as_str()))
            })
            .filter(|a| a.get_long() != Some(FLAG))
            .ok_or_else(|| {
                ParseError::Config(format!(
                    "--{FLAG} {shown}: unknown flag {key:?} (the flags are those of `dvnode {name} --help`, without the dashes)"
                ))
            })?;
        let names = arg.get_long_and_visible_aliases().unwrap_or_default();
        let on_command_line = given.iter().any(|a| {
            names
                .iter()
                .any(|n| *a == format!("--{n}") || a.starts_with(&format!("--{n}=")))
        });
        let in_environment = arg.get_env().is_some_and(|e| std::env::var_os(e).is_some());
        if on_command_line || in_environment {
            continue;
        }
        let long = format!("--{}", arg.get_long().unwrap_or(key));
        let scalar = |v: &toml::Value| -> Result<String, ParseError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                other => Err(ParseError::Config(format!(
                    "--{FLAG} {shown}: {key}: a {} is not a flag value (a string, a number, true, or a list of them)",
                    other.type_str()
                ))),
            }
        };
        match value {
            toml::Value::Boolean(true) => added.push(long.into()),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    added.push(long.clone().into());
                    added.push(scalar(item)?.into());
                }
            }
            other => {
                added.push(long.into());
                added.push(scalar(other)?.into());
            }
        }
        keys.push(key.clone());
    }
    let mut full = args[..2].to_vec();
    full.extend(added);
    full.extend(args[2..].iter().cloned());
    let matches = command.try_get_matches_from(full).map_err(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            return ParseError::Clap(e);
        }
        let rendered = e.render().to_string();
        let message = rendered.trim_start_matches("error: ").trim_end();
        ParseError::Config(format!(
            "{message}\n(flags read from --{FLAG} {shown}: {})",
            keys.join(", ")
        ))
    })?;
    C::from_arg_matches(&matches).map_err(ParseError::Clap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(clap::Subcommand, Debug)]
    enum TestCommand {
        Run {
            #[arg(long = "datadir", visible_alias = "data-dir")]
            data_dir: String,
            #[arg(
                long = "beacon-nodes",
                visible_alias = "beacon-node",
                value_delimiter = ','
            )]
            beacon_nodes: Vec<String>,
            #[arg(long, env = "DVNODE_CONFIG_FILE_TEST_PORT", default_value_t = 5064)]
            port: u16,
            #[arg(long)]
            plain: bool,
            #[arg(long)]
            config_file: Option<PathBuf>,
        },
    }

    fn parse(file: &str, args: &[&str]) -> Result<TestCli, ParseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dvnode.toml");
        std::fs::write(&path, file).unwrap();
        let mut all: Vec<OsString> = vec!["dvnode".into(), "run".into()];
        all.push("--config-file".into());
        all.push(path.into());
        all.extend(args.iter().map(OsString::from));
        parse_args(all)
    }

    #[test]
    fn the_command_line_wins_over_the_environment_over_the_file() {
        let file = "data-dir = \"/from/file\"\nbeacon-nodes = [\"http://a\", \"http://b\"]\nport = 1\nplain = true\n";
        let TestCommand::Run {
            data_dir,
            beacon_nodes,
            port,
            plain,
            ..
        } = parse(file, &["--datadir", "/from/args"]).unwrap().command;
        assert_eq!(data_dir, "/from/args");
        assert_eq!(beacon_nodes, ["http://a", "http://b"]);
        assert_eq!(port, 1);
        assert!(plain);
        // SAFETY (edition 2021: set_var is safe): this variable is read by this test only.
        std::env::set_var("DVNODE_CONFIG_FILE_TEST_PORT", "7");
        let TestCommand::Run { port, .. } = parse(file, &[]).unwrap().command;
        std::env::remove_var("DVNODE_CONFIG_FILE_TEST_PORT");
        assert_eq!(port, 7);
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let error = |file: &str| match parse(file, &[]) {
            Err(ParseError::Config(e)) => e,
            other => panic!("{other:?}"),
        };
        let e = error("datadir = \"d\"\nnonsense = 1\n");
        assert!(
            e.contains("unknown flag \"nonsense\"") && e.contains("dvnode.toml"),
            "{e}"
        );
        let e = error("datadir = \"d\"\nport = \"many\"\n");
        assert!(
            e.contains("--port") && e.contains("flags read from --config-file"),
            "{e}"
        );
        let e = error("datadir = [");
        assert!(e.contains("not TOML"), "{e}");
        let e = error("datadir = \"d\"\n[port]\nx = 1\n");
        assert!(e.contains("port: a table is not a flag value"), "{e}");
    }
}
