//! `punchd agents` (on the hub: register agents, list them) and `punchd agent` (on the edge box: run the agent,
//! [`crate::agent`]).

use anyhow::bail;
use chrono::Utc;

use super::{open_store, open_store_with, print_rows};
use crate::config::Config;
use crate::format::{Format, Rows};
use crate::store::agents::{AgentInfo, NewAgent};
use crate::web::auth::{generate_token, hash_token};

/// `punchd agents` actions.
#[derive(Debug, clap::Subcommand)]
pub enum AgentsAction {
    /// List agents: site, last contact (UTC), backlog, devices, alarms.
    List,
    /// Register an agent for a site and print its token (shown only once). The token opens only the agent API,
    /// and only for devices of that site.
    Add {
        /// A name for the agent [default: the site].
        name: Option<String>,
        /// The site the agent writes for.
        #[arg(long)]
        site: String,
    },
}

/// Run `punchd agents …` on the hub's database.
///
/// Errors: no database (listing), an agent of that name exists, the store failed.
pub async fn agents(config: Config, action: AgentsAction, format: Format) -> anyhow::Result<()> {
    match action {
        AgentsAction::List => {
            let store = open_store(&config).await?;
            let agents = store.list_agents().await?;
            print_rows(&agent_rows(&agents), format, serde_json::to_value(&agents)?)
        }
        AgentsAction::Add { name, site } => {
            let site = site.trim().to_owned();
            if site.is_empty() {
                bail!("--site is empty");
            }
            let name = name.unwrap_or_else(|| site.clone());
            let store = open_store_with(&config, true).await?;
            let token = generate_token();
            store
                .create_agent(
                    NewAgent {
                        name: name.clone(),
                        site: site.clone(),
                        token_hash: hash_token(&token),
                    },
                    Utc::now(),
                )
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict(_) => anyhow::anyhow!(
                        "an agent named {name:?} exists (give another name: `punchd agents add NAME --site {site}`)"
                    ),
                    other => other.into(),
                })?;
            eprintln!(
                "agent {name:?} for site {site:?} added; on the agent: punchd agent --hub https://<this hub> --token <the token below> --site {site} --device SN@host:port"
            );
            println!("{token}");
            Ok(())
        }
    }
}

/// Agents as a table: name, site, last contact, version, backlog and its oldest, devices, alarms (the newest).
pub fn agent_rows(agents: &[AgentInfo]) -> Rows {
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    Rows {
        header: vec![
            "name",
            "site",
            "last_contact",
            "version",
            "backlog",
            "oldest",
            "devices",
            "alarms",
            "last_alarm",
        ],
        rows: agents
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    a.site.clone(),
                    time(a.last_contact_at),
                    a.version.clone().unwrap_or_default(),
                    a.backlog_count.to_string(),
                    time(a.backlog_oldest_at),
                    a.devices
                        .iter()
                        .map(|d| d.device_sn.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    a.alarms.len().to_string(),
                    a.alarms
                        .first()
                        .map(|al| {
                            format!("{} {}: {}", time(Some(al.raised_at)), al.kind, al.message)
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    }
}
