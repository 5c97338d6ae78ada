//! Configuration: loading the agentgateway-style YAML.
