"""The parts of the agent's window, each a pure renderer of :class:`agent_client.view.View`
that turns the agent's clicks into :class:`agent_client.view.Actions` calls."""
