using Loomworks.Configuration;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Configuration;

public sealed class ConfigLoaderTests : IDisposable
{
    private readonly Scratch _scratch = new("cfg");
    private static readonly Dictionary<string, string> NoEnvironment = [];
    private static readonly Dictionary<string, string> NoFlags = [];

    public void Dispose() => _scratch.Dispose();

    private string WriteConfig(string text)
    {
        var path = _scratch.Write("loomworks.conf", text);
        return path;
    }

    [Fact]
    public void Defaults_follow_Odoo_except_admin_passwd()
    {
        var settings = ConfigLoader.Load(null, NoEnvironment, NoFlags, lookForDefaultFile: false);

        Assert.Equal(8069, settings.HttpPort);
        Assert.True(settings.GetBool(ConfigKeys.ListDb));
        Assert.False(settings.ProxyMode);
        Assert.Equal(64, settings.MaxConnections);
        Assert.Null(settings.AdminPassword);
        Assert.True(settings.UsesEmbeddedPostgres);
        Assert.Equal(ConfigSource.Default, settings.SourceOf(ConfigKeys.HttpPort));
    }

    [Fact]
    public void File_then_environment_then_flags_each_override_the_one_before()
    {
        var file = WriteConfig("[options]\nhttp_port = 9001\ndb_host = filehost\nlog_level = warn\ndb_user = fileuser\n");
        var environment = new Dictionary<string, string> { ["DB_HOST"] = "envhost", ["LOOMWORKS_HTTP_PORT"] = "9002" };
        var flags = new Dictionary<string, string> { ["http-port"] = "9003" };

        var settings = ConfigLoader.Load(file, environment, flags);

        Assert.Equal(9003, settings.HttpPort);
        Assert.Equal(ConfigSource.CommandLine, settings.SourceOf(ConfigKeys.HttpPort));
        Assert.Equal("envhost", settings.DbHost);
        Assert.Equal(ConfigSource.Environment, settings.SourceOf(ConfigKeys.DbHost));
        Assert.Equal("fileuser", settings.DbUser);
        Assert.Equal(ConfigSource.File, settings.SourceOf(ConfigKeys.DbUser));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, settings.LogLevel);
    }

    [Fact]
    public void Loomworks_variable_wins_over_the_container_variable()
    {
        var environment = new Dictionary<string, string> { ["DB_PORT"] = "5433", ["LOOMWORKS_DB_PORT"] = "5434" };

        var settings = ConfigLoader.Load(null, environment, NoFlags, lookForDefaultFile: false);

        Assert.Equal(5434, settings.DbPort);
    }

    [Fact]
    public void Seed_keys_take_a_single_LOOMWORKS_prefix()
    {
        Assert.Equal("LOOMWORKS_BASE_DOMAIN", ConfigKeys.BaseDomain.EnvironmentVariable);
        Assert.Equal("LOOMWORKS_DB_HOST", ConfigKeys.DbHost.EnvironmentVariable);
        var settings = ConfigLoader.Load(null, new Dictionary<string, string> { ["LOOMWORKS_BASE_DOMAIN"] = "example.test" },
            NoFlags, lookForDefaultFile: false);
        Assert.Equal("example.test", settings.Get(ConfigKeys.BaseDomain));
    }

    [Fact]
    public void LOOMWORKS_RC_names_the_file_when_no_flag_does()
    {
        var file = WriteConfig("[options]\nhttp_port = 7070\n");

        var settings = ConfigLoader.Load(null, new Dictionary<string, string> { ["LOOMWORKS_RC"] = file }, NoFlags);

        Assert.Equal(7070, settings.HttpPort);
        Assert.Equal(file, settings.ConfigFile);
    }

    [Fact]
    public void False_means_unset_for_text_keys_but_is_a_value_for_booleans()
    {
        var file = WriteConfig("[options]\ndb_host = False\nproxy_mode = False\nlist_db = False\n");

        var settings = ConfigLoader.Load(file, NoEnvironment, NoFlags);

        Assert.Null(settings.DbHost);
        Assert.False(settings.GetBool(ConfigKeys.ListDb));
    }

    [Fact]
    public void Other_sections_and_comments_are_skipped()
    {
        var file = WriteConfig("; comment\n# another\n[other]\nhttp_port = nonsense\n[options]\nhttp_port = 8100\n");

        var settings = ConfigLoader.Load(file, NoEnvironment, NoFlags);

        Assert.Equal(8100, settings.HttpPort);
    }

    [Fact]
    public void Unknown_key_is_a_warning_naming_file_line_and_key()
    {
        var file = WriteConfig("[options]\nhttp_port = 8069\naddons_path = /opt/addons\n");

        var settings = ConfigLoader.Load(file, NoEnvironment, NoFlags);

        var warning = Assert.Single(settings.Warnings);
        Assert.Contains($"{file}:3", warning);
        Assert.Contains("addons_path", warning);
    }

    [Theory]
    [InlineData("[options]\nthis line has no separator\n", ":2", "expected 'key = value'")]
    [InlineData("[options\nhttp_port = 1\n", ":1", "closing ']'")]
    [InlineData("http_port = 8069\n", ":1", "before any section")]
    [InlineData("[options]\nhttp_port = eighty\n", ":2", "http_port")]
    [InlineData("[options]\nhttp_port = 70000\n", ":2", "outside")]
    [InlineData("[options]\nloomworks_restore_paced_mb_per_s = fast\n", ":2", "'fast' is not a whole number")]
    [InlineData("[options]\nloomworks_restore_paced_mb_per_s = -1\n", ":2", "-1 is outside 0..100000")]
    [InlineData("[options]\nloomworks_restore_paced_mb_per_s = 99999999999\n", ":2", "not a whole number")]
    [InlineData("[options]\nloomworks_rpc_body_max_mb = -5\n", ":2", "-5 is outside 0..8192")]
    [InlineData("[options]\nloomworks_rpc_body_max_mb = big\n", ":2", "'big' is not a whole number")]
    [InlineData("[options]\nloomworks_rpc_bodies_in_flight_mb = 0\n", ":2", "0 is outside 1..65536")]
    [InlineData("[options]\nloomworks_restore_max_uploads = 0\n", ":2", "0 is outside 1..64")]
    [InlineData("[options]\nloomworks_restore_max_uploads = many\n", ":2", "'many' is not a whole number")]
    [InlineData("[options]\nloomworks_restore_spool_max_mb = 0\n", ":2", "0 is outside 1..")]
    [InlineData("[options]\ndb_maxconn = 3\n", ":2", "3 is outside 4..10000")]
    [InlineData("[options]\ndbfilter = ^(unclosed\n", ":2", "dbfilter")]
    [InlineData("[options]\nproxy_mode = maybe\n", ":2", "proxy_mode")]
    [InlineData("[options]\nlog_level = loud\n", ":2", "log_level")]
    [InlineData("[options]\nloomworks_trusted_proxies = 10.0.0.0/8, not-an-ip\n", ":2", "not-an-ip")]
    [InlineData("[options]\nhttp_port = 1\nhttp_port = 2\n", ":3", "already set on line 2")]
    public void Bad_file_content_is_an_error_naming_file_line_and_problem(string content, string line, string problem)
    {
        var file = WriteConfig(content);

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(file, NoEnvironment, NoFlags));

        Assert.Contains(file + line, error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void Every_problem_in_a_file_is_reported_at_once()
    {
        var file = WriteConfig("[options]\nhttp_port = x\ndb_port = y\n");

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(file, NoEnvironment, NoFlags));

        Assert.Contains("http_port", error.Message);
        Assert.Contains("db_port", error.Message);
    }

    [Fact]
    public void Bad_environment_value_names_the_variable()
    {
        var error = Assert.Throws<ConfigException>(() =>
            ConfigLoader.Load(null, new Dictionary<string, string> { ["DB_PORT"] = "five" }, NoFlags, lookForDefaultFile: false));

        Assert.Contains("DB_PORT", error.Message);
    }

    [Fact]
    public void Missing_file_named_by_flag_is_an_error()
    {
        var error = Assert.Throws<ConfigException>(() =>
            ConfigLoader.Load(_scratch.File("absent.conf"), NoEnvironment, NoFlags));

        Assert.Contains("absent.conf", error.Message);
    }

    [Fact]
    public void Oversized_or_binary_file_is_refused_with_a_reason()
    {
        var big = _scratch.Write("big.conf", "[options]\n; " + new string('x', 2 * 1024 * 1024));
        Assert.Contains("larger than", Assert.Throws<ConfigException>(() => ConfigLoader.Load(big, NoEnvironment, NoFlags)).Message);

        var binary = _scratch.File("binary.conf");
        File.WriteAllBytes(binary, [0x5b, 0xff, 0xfe, 0x00, 0x80]);
        Assert.Contains("cannot be read", Assert.Throws<ConfigException>(() => ConfigLoader.Load(binary, NoEnvironment, NoFlags)).Message);
    }

    [Fact]
    public void Control_characters_in_values_are_refused()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null,
            new Dictionary<string, string> { ["DB_HOST"] = "host\u0001name" }, NoFlags, lookForDefaultFile: false));

        Assert.Contains("control characters", error.Message);
    }

    [Fact]
    public void Written_file_reads_back_the_same_and_is_private()
    {
        var settings = ConfigLoader.Load(null, new Dictionary<string, string> { ["DB_HOST"] = "db", ["ADMIN_PASSWD"] = "s3cret" },
            new Dictionary<string, string> { ["http_port"] = "8080" }, lookForDefaultFile: false);
        var path = _scratch.File("out.conf");

        ConfigWriter.Write(path, ConfigWriter.Render(settings, includeDefaults: true));
        var reread = ConfigLoader.Load(path, NoEnvironment, NoFlags);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal("db", reread.DbHost);
        Assert.Equal("s3cret", reread.AdminPassword);
        Assert.Equal(8080, reread.HttpPort);
        Assert.Equal(settings.GetBool(ConfigKeys.ListDb), reread.GetBool(ConfigKeys.ListDb));
    }
}
