"""The tool-call protocol: value types, ToolSpec, the registry. Depends on nothing of Banana's."""

from banana.tools.registry import ENTRY_POINT_GROUP, Registry, RegistryError, default_registry
from banana.tools.spec import Cancelled, Port, Resources, Role, ToolContext, ToolSpec, tool
from banana.tools.values import Boxes, Face, Identity, Image, Mask, Number, Text, Value, value_type

__all__ = [
    "ENTRY_POINT_GROUP", "Boxes", "Cancelled", "Face", "Identity", "Image", "Mask", "Number", "Port",
    "Registry", "RegistryError", "Resources", "Role", "Text", "ToolContext", "ToolSpec", "Value",
    "default_registry", "tool", "value_type",
]
