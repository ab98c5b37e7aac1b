//! The `accessgrant` command line: `serve`, `migrate`, `audit verify`.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};

use crate::{
    clock::SystemClock,
    config::{Config, Overrides},
    domain::ids::AccountId,
    server, shutdown,
    storage::{Store, accounts, audit_log},
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
    /// Verify hash chains straight from the database; exit 1 at the first broken event.
    Verify {
        /// Only this account (default: every account).
        #[arg(long)]
        account: Option<String>,
        /// Database, config and logging.
        #[command(flatten)]
        common: CommonArgs,
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
            command: AuditCommand::Verify { account, common },
        } => (Job::Verify(account), overrides(common, None)),
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
            Job::Verify(account) => verify(config, account).await,
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
    Verify(Option<String>),
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

async fn verify(config: Config, account: Option<String>) -> ExitCode {
    let store = match Store::connect_with(&config.database_url, &config.database).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("accessgrant: cannot open the database: {e}");
            return ExitCode::from(2);
        }
    };
    let accounts = match account {
        Some(a) => match named_account(&store, a).await {
            Ok(a) => vec![a],
            Err(code) => return code,
        },
        None => match audit_log::chain_accounts(store.reader()).await {
            Ok(list) => list,
            Err(e) => {
                eprintln!("accessgrant: cannot list accounts: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut broken = false;
    for account in &accounts {
        match audit_log::has_chain(store.reader(), account).await {
            Ok(true) => {}
            Ok(false) => {
                // Listed, or named and provisioned: its whole log is gone.
                broken = true;
                println!("{account}: BROKEN: the account exists but has no audit events");
                continue;
            }
            Err(e) => {
                eprintln!("accessgrant: cannot read {account}: {e}");
                return ExitCode::from(2);
            }
        }
        match audit_log::verify(&store, account).await {
            Ok(v) if v.intact() => println!("{account}: intact ({} events)", v.events_checked),
            Ok(v) => {
                broken = true;
                println!(
                    "{account}: BROKEN at event {} (after checking {} events)",
                    v.first_broken_event_id.unwrap_or_default(),
                    v.events_checked
                );
            }
            Err(e) => {
                eprintln!("accessgrant: cannot verify {account}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let _ = store.close().await;
    if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The account named by `--account`, or exit status 2 for a usage error: an id that is not
/// an account id, or one with neither an account nor any audit event (a typo in a cron job
/// must not page as "chain broken"). A provisioned account without events passes through and
/// is then reported broken.
async fn named_account(store: &Store, account: String) -> Result<String, ExitCode> {
    let id = AccountId::parse(&account, "--account").map_err(|v| {
        eprintln!("accessgrant: --account {account:?}: {}", v.description);
        ExitCode::from(2)
    })?;
    let reader = store.reader();
    let known = async {
        Ok::<_, crate::domain::Error>(
            audit_log::has_chain(reader, id.as_str()).await?
                || accounts::find(reader, &id).await?.is_some(),
        )
    };
    match known.await {
        Ok(true) => Ok(account),
        Ok(false) => {
            eprintln!("accessgrant: {account}: no such account and no audit events");
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("accessgrant: cannot read {account}: {e}");
            Err(ExitCode::from(2))
        }
    }
}
