"""batchwire simulators: process models and the OPC UA / Modbus servers that expose them."""
