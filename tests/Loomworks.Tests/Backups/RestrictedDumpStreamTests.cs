using System.Text;
using Loomworks.Backups;

namespace Loomworks.Tests.Backups;

/// <summary>psql gets a plain dump behind a \restrict of ours, without the dump's own \restrict and \unrestrict lines.</summary>
public sealed class RestrictedDumpStreamTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(1 << 20)]
    public void The_dump_reaches_psql_behind_our_key_without_its_own_restrict_lines(int piece)
    {
        const string dump = "--\n-- PostgreSQL database dump\n--\n\n\\restrict TheirKey\n\n-- Dumped from 15\n\nSET x = 1;\n" +
            "COPY public.t (n) FROM stdin;\n\\restrict x\n\\N\n\\.\n\n\\restrict Later\n" +
            "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict TheirKey\n\n";
        using var stream = new RestrictedDumpStream(new MemoryStream(Encoding.UTF8.GetBytes(dump)), "OurKey1");
        var output = new MemoryStream();
        var buffer = new byte[piece];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            output.Write(buffer, 0, read);
        }
        Assert.Equal("\\restrict OurKey1\n--\n-- PostgreSQL database dump\n--\n\n\n-- Dumped from 15\n\nSET x = 1;\n" +
            "COPY public.t (n) FROM stdin;\n\\restrict x\n\\N\n\\.\n\n\\restrict Later\n" +
            "--\n-- PostgreSQL database dump complete\n--\n\n\n", Encoding.UTF8.GetString(output.ToArray()));
    }
}
