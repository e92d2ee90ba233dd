//! A real Home Assistant (PyPI's `homeassistant`, in `tests/home_assistant/.venv`) started on
//! loopback for a test: onboarded with an owner whose token the test uses, connected to a given
//! MQTT broker through the MQTT integration's own config flow, and stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// The `hass` of the test's virtual environment.
pub fn hass_program() -> PathBuf {
    crate::repo_root().join("tests/home_assistant/.venv/bin/hass")
}

/// What is missing for a test against Home Assistant (`None`: nothing).
pub fn home_assistant_missing() -> Option<String> {
    (!hass_program().exists()).then(|| {
        "no Home Assistant in tests/home_assistant/.venv (see tests/home_assistant/requirements.txt)"
            .to_string()
    })
}

/// A running Home Assistant.
pub struct HomeAssistant {
    child: Child,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    token: String,
    http: reqwest::Client,
    log: PathBuf,
}

impl Drop for HomeAssistant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HomeAssistant {
    /// Starts Home Assistant with its configuration in `dir` on loopback `port`, onboards an
    /// owner and adds the MQTT integration for the broker at `127.0.0.1:broker_port`, logging in
    /// with `login` (user name, password) if given.
    pub async fn start(
        dir: &Path,
        port: u16,
        broker_port: u16,
        login: Option<&(String, String)>,
    ) -> anyhow::Result<Self> {
        let configuration = [
            "homeassistant:",
            "  name: Test home",
            "  latitude: 52.52",
            "  longitude: 13.40",
            "  elevation: 34",
            "  unit_system: metric",
            "  time_zone: Europe/Berlin",
            "  currency: EUR",
            "  country: DE",
            "http:",
            "  server_host: 127.0.0.1",
            &format!("  server_port: {port}"),
            "api:",
            "config:",
            "onboarding:",
            "logger:",
            "  default: warning",
        ]
        .join("\n");
        std::fs::write(dir.join("configuration.yaml"), configuration + "\n")?;
        replenish_commerce::ensure_crypto_provider();
        let log = dir.join("hass.log");
        let child = Command::new(hass_program())
            .arg("--config")
            .arg(dir)
            .arg("--skip-pip")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting hass")?;
        let mut ha = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            log,
        };
        ha.wait_up(Duration::from_secs(120)).await?;
        ha.onboard().await?;
        ha.add_mqtt(broker_port, login).await?;
        Ok(ha)
    }

    /// The end of Home Assistant's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn wait_up(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(answer) = self
                .http
                .get(format!("{}/api/onboarding", self.url))
                .send()
                .await
                && answer.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("hass exited ({status}):\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("hass did not answer within {limit:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Creates the owner through onboarding and takes an access token.
    async fn onboard(&mut self) -> anyhow::Result<()> {
        let client_id = format!("{}/", self.url);
        let created: Value = self
            .http
            .post(format!("{}/api/onboarding/users", self.url))
            .json(&json!({
                "client_id": client_id,
                "name": "Test",
                "username": "test",
                "password": "test-password-1",
                "language": "en",
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let code = created["auth_code"]
            .as_str()
            .ok_or_else(|| anyhow!("no auth code: {created}"))?;
        let token: Value = self
            .http
            .post(format!("{}/auth/token", self.url))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        self.token = token["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("no access token: {token}"))?
            .to_string();
        Ok(())
    }

    /// Adds the MQTT integration as a person would: its config flow, broker, port and login.
    async fn add_mqtt(
        &self,
        broker_port: u16,
        login: Option<&(String, String)>,
    ) -> anyhow::Result<()> {
        let flow = self
            .post(
                "/api/config/config_entries/flow",
                json!({ "handler": "mqtt", "show_advanced_options": false }),
            )
            .await?;
        let id = flow["flow_id"]
            .as_str()
            .ok_or_else(|| anyhow!("no flow: {flow}"))?;
        let mut broker = json!({ "broker": "127.0.0.1", "port": broker_port });
        if let Some((user, password)) = login {
            broker["username"] = json!(user);
            broker["password"] = json!(password);
        }
        let done = self
            .post(&format!("/api/config/config_entries/flow/{id}"), broker)
            .await?;
        if done["type"] != "create_entry" {
            bail!("the MQTT integration was not added: {done}");
        }
        Ok(())
    }

    /// POSTs `body` to `path` with the owner's token; the answer's JSON.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let answer = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every entity's state.
    pub async fn states(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .http
            .get(format!("{}/api/states", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Waits until some entity satisfies `test`; that entity's state.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        test: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self.states().await?.into_iter().find(&test) {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!("{what}: not within {limit:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until no entity satisfies `test`.
    pub async fn wait_gone(
        &self,
        what: &str,
        limit: Duration,
        test: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if !self.states().await?.iter().any(&test) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what}: still there after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
