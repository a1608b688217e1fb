"""batchwire edge agent: acquisition, batch context, durable outbox, MQTT publishing."""
