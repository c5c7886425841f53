# File: ops_setup.py
from hms_ops import NOC, Metric, Alert, Playbook

# 1️⃣  Connect to the virtual NOC
noc = NOC.connect("USDS_Unemployment")

# 2️⃣  Declare a latency metric (auto-scraped every 1 min)
latency = Metric(
    name="api.latency_p99",
    unit="ms",
    source="https://benefits.gov/api"
)
noc.register(latency)

# 3️⃣  Create an alert tied to the SLA
alert = Alert(
    name="sla_latency_breach",
    metric="api.latency_p99",
    condition="> 1000",       # >1 000 ms
    window="5m"
)

# 4️⃣  Attach a rollback playbook
play = Playbook.steps([
    "kubectl rollout undo deploy/benefits-api",   # ⬅ step 1
    "notify oncall 'Rollback complete'"           # ⬅ step 2
])
alert.set_playbook(play)

noc.register(alert)
print("✅ Monitoring & auto-rollback armed!")
