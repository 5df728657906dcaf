-- The launch state of each RBM agent in each region, as the last AgentLaunchEvent
-- said (shown on GET /v1/connectors).
CREATE TABLE rbm_launch_states (
    agent TEXT NOT NULL,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    previous TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (agent, region)
);
