namespace Loomworks.Configuration;

/// <summary>A configuration that cannot be used; the message names every problem with its key, file and line.</summary>
public sealed class ConfigException(string message) : Exception(message);
