//! The `accessgrant` command line: `serve`, `migrate`, `audit verify|key|monitor`, `token`.

mod key;
mod monitor;
mod verify;
mod verify_tree;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};

use crate::{
    clock::SystemClock,
    config::{Config, Overrides},
    server, shutdown,
    telemetry::{self, LogFormat},
};

/// Customer-controlled support access, with a tamper-evident audit log.
#[derive(Debug, Parser)]
#[command(name = "accessgrant", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by commands that touch the database.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Database URL: sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB.
    #[arg(long, env = "ACCESSGRANT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML config file (every key optional).
    #[arg(long, env = "ACCESSGRANT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "ACCESSGRANT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run migrations, then serve gRPC until SIGTERM/SIGINT.
    Serve {
        /// Address to listen on (host:port).
        #[arg(long, env = "ACCESSGRANT_LISTEN")]
        listen: Option<String>,
        /// Prometheus metrics address (host:port; empty disables; default 127.0.0.1:9464).
        #[arg(long, env = "ACCESSGRANT_METRICS_LISTEN")]
        metrics_listen: Option<String>,
        /// Database, config and logging.
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run migrations and exit.
    Migrate {
        /// Database, config and logging.
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Audit log tools.
    Audit {
        /// The audit subcommand.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Bearer token tools.
    Token {
        /// The token subcommand.
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// `accessgrant token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the SHA-256 (hex) of a token read from stdin, for `token_sha256` in the config.
    /// One trailing newline is ignored, so `echo "$TOKEN" | accessgrant token hash` works.
    Hash,
    /// Print a new random token (244 random bits from the OS, base64url) and, on stderr,
    /// its SHA-256.
    Generate,
}

/// `accessgrant audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify hash chains straight from the database, and with --verifier-key the Merkle
    /// tree (rebuilt from the event rows) against every stored and every given checkpoint;
    /// exit 1 at the first broken event or checkpoint.
    Verify {
        /// Only this account's chain (default: every account).
        #[arg(long)]
        account: Option<String>,
        /// The log's verifier key (`<origin>+<key id>+<base64 key>`): also check the tree
        /// and the checkpoints.
        #[arg(long)]
        verifier_key: Option<String>,
        /// A checkpoint kept from GetAuditCheckpoint (a file with its signed-note text);
        /// repeatable.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// Database, config and logging.
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The checkpoint signing key.
    Key {
        /// The key subcommand.
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Watch a server as an auditor: check each new checkpoint's signature and consistency
    /// with the last one kept, and (with --account) re-read and re-verify that account's
    /// whole log; keep the new checkpoint only when everything holds. Exit 1 on any failure,
    /// printing both checkpoints and the failing event.
    Monitor(monitor::MonitorArgs),
}

/// `accessgrant audit key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600; never replaces a file) and
    /// print its verifier key.
    Generate {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// The log's name the verifier key is for (`[audit] origin`).
        #[arg(long, default_value = "accessgrant/audit")]
        origin: String,
    },
    /// Print the verifier key of an existing signing key.
    Show {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
        /// The log's name the verifier key is for (`[audit] origin`).
        #[arg(long, default_value = "accessgrant/audit")]
        origin: String,
    },
}

fn overrides(common: CommonArgs, listen: Option<String>) -> Overrides {
    Overrides {
        listen,
        metrics_listen: None,
        database_url: common.database_url,
        config: common.config,
        log_format: common.log_format,
    }
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let (command, overrides) = match cli.command {
        Command::Token { command } => return token(command),
        Command::Serve {
            listen,
            metrics_listen,
            common,
        } => (
            Job::Serve,
            Overrides {
                metrics_listen,
                ..overrides(common, listen)
            },
        ),
        Command::Migrate { common } => (Job::Migrate, overrides(common, None)),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    account,
                    verifier_key,
                    checkpoints,
                    common,
                },
        } => (
            Job::Verify(verify::VerifyArgs {
                account,
                verifier_key,
                checkpoints,
            }),
            overrides(common, None),
        ),
        Command::Audit {
            command: AuditCommand::Key { command },
        } => return key::run(command),
        Command::Audit {
            command: AuditCommand::Monitor(args),
        } => return monitor::run(args),
    };
    let config = match Config::load(overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("accessgrant: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(command, Job::Serve)
        && crate::storage::sqlite_file::path_of(&config.database_url).is_some()
        && crate::storage::thread_priority::lower_workers()
    {
        // The SQLite writer thread cannot be raised above request handling: lower request
        // handling below it instead (see `storage::thread_priority`).
        builder.on_thread_start(|| {
            let _ = crate::storage::thread_priority::set_current_thread_nice(
                crate::storage::thread_priority::FALLBACK_WORKER_NICE,
            );
        });
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accessgrant: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the OTLP/gRPC span exporter runs its client on it.
    runtime.block_on(async { telemetry::init(config.log_format) });
    let code = runtime.block_on(async move {
        match command {
            Job::Serve => serve(config).await,
            Job::Migrate => migrate(config).await,
            Job::Verify(args) => verify::verify(config, args).await,
        }
    });
    // Flush buffered spans while the runtime that carries the exporter still runs.
    telemetry::shutdown();
    code
}

fn token(command: TokenCommand) -> ExitCode {
    use std::io::Read;
    match command {
        TokenCommand::Hash => {
            let mut input = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut input) {
                eprintln!("accessgrant: cannot read stdin: {e}");
                return ExitCode::from(2);
            }
            if input.last() == Some(&b'\n') {
                input.pop();
                if input.last() == Some(&b'\r') {
                    input.pop();
                }
            }
            if input.is_empty() {
                eprintln!("accessgrant: empty token on stdin");
                return ExitCode::from(2);
            }
            println!("{}", hex::encode(crate::auth::token::sha256(&input)));
            ExitCode::SUCCESS
        }
        TokenCommand::Generate => {
            use base64::Engine;
            // 256 bits from the operating system's generator.
            let mut bytes = [0u8; 32];
            if let Err(e) = getrandom::fill(&mut bytes) {
                eprintln!("accessgrant: no randomness from the operating system: {e}");
                return ExitCode::FAILURE;
            }
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            println!("{token}");
            eprintln!(
                "token_sha256 = \"{}\"",
                hex::encode(crate::auth::token::sha256(token.as_bytes()))
            );
            ExitCode::SUCCESS
        }
    }
}

enum Job {
    Serve,
    Migrate,
    Verify(verify::VerifyArgs),
}

async fn serve(config: Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match server::run(config, Arc::new(SystemClock), listener, shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: Config) -> ExitCode {
    match server::open_store(&config).await {
        Ok(store) => {
            tracing::info!("migrations applied");
            let _ = store.close().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "migration failed");
            ExitCode::FAILURE
        }
    }
}
