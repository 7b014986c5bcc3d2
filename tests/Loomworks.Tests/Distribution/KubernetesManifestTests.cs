using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using YamlDotNet.Core;

namespace Loomworks.Tests.Distribution;

public sealed partial class KubernetesManifestTests
{
    private static readonly string Folder = Tool.Repo("infrastructure", "kubernetes");

    /// <summary>Every object of every manifest, loaded strictly: an unknown or misspelt field fails the load.</summary>
    private static List<object> LoadAll() =>
        Directory.GetFiles(Folder, "*.yaml")
            .Where(f => Path.GetFileName(f) != "kustomization.yaml")
            .Order(StringComparer.Ordinal)
            .SelectMany(f => KubernetesYaml.LoadAllFromString(File.ReadAllText(f), strict: true))
            .ToList();

    [Fact]
    public void Every_manifest_loads_strictly_and_is_listed_in_the_kustomization()
    {
        var objects = LoadAll();
        var kinds = objects.Select(o => ((IKubernetesObject)o).Kind).ToList();
        foreach (var kind in new[] { "Namespace", "StatefulSet", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Service",
                     "ConfigMap", "Secret", "PersistentVolumeClaim", "PodDisruptionBudget", "NetworkPolicy" })
        {
            Assert.Contains(kind, kinds);
        }
        var kustomization = File.ReadAllText(Path.Combine(Folder, "kustomization.yaml"));
        var listed = ResourceLine().Matches(kustomization).Select(m => m.Groups[1].Value).ToHashSet();
        var files = Directory.GetFiles(Folder, "*.yaml").Select(Path.GetFileName).Where(n => n != "kustomization.yaml");
        Assert.Equal(files.Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));
        Assert.All(objects.Cast<IMetadata<V1ObjectMeta>>().Where(o => o is not V1Namespace),
            o => Assert.Equal("loomworks", o.Metadata.NamespaceProperty));
    }

    [Fact]
    public void A_misspelt_field_fails_the_strict_load()
    {
        const string Yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicaz: 2\n";
        Assert.ThrowsAny<YamlException>(() => KubernetesYaml.LoadAllFromString(Yaml, strict: true));
    }

    [Fact]
    public void Loomworks_probes_health_and_readiness()
    {
        var deployment = LoadAll().OfType<V1Deployment>().Single(d => d.Metadata.Name == "loomworks");
        var container = deployment.Spec.Template.Spec.Containers.Single(c => c.Name == "loomworks");
        Assert.Equal("/web/health", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("/web/health/ready", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/web/health", container.StartupProbe.HttpGet.Path);
        var port = container.Ports.Single();
        Assert.Equal(8069, port.ContainerPort);
        Assert.All(new[] { container.LivenessProbe, container.ReadinessProbe, container.StartupProbe },
            p => Assert.Equal(port.Name, p.HttpGet.Port.Value));
        Assert.Equal(0, int.Parse(deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value,
            System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Every_container_is_non_root_read_only_and_has_resources()
    {
        foreach (var (name, pod) in PodTemplates(LoadAll()))
        {
            Assert.True(pod.Spec.SecurityContext?.RunAsNonRoot == true, $"{name}: pod runAsNonRoot");
            Assert.True(pod.Spec.SecurityContext.RunAsUser is > 0, $"{name}: pod runAsUser");
            Assert.Equal("RuntimeDefault", pod.Spec.SecurityContext.SeccompProfile?.Type);
            foreach (var container in pod.Spec.Containers)
            {
                var security = container.SecurityContext;
                Assert.True(security?.RunAsNonRoot == true, $"{name}/{container.Name}: runAsNonRoot");
                Assert.True(security.ReadOnlyRootFilesystem == true, $"{name}/{container.Name}: readOnlyRootFilesystem");
                Assert.True(security.AllowPrivilegeEscalation == false, $"{name}/{container.Name}: allowPrivilegeEscalation");
                Assert.Contains("ALL", security.Capabilities.Drop);
                foreach (var resource in new[] { "cpu", "memory" })
                {
                    Assert.True(container.Resources?.Requests?.ContainsKey(resource) == true,
                        $"{name}/{container.Name}: requests.{resource}");
                    Assert.True(container.Resources.Limits?.ContainsKey(resource) == true, $"{name}/{container.Name}: limits.{resource}");
                }
                // Read-only root: every mount must name a volume of the pod or a claim template.
                var volumes = (pod.Spec.Volumes ?? []).Select(v => v.Name).ToHashSet();
                Assert.All(container.VolumeMounts ?? [], m => Assert.True(volumes.Contains(m.Name) || m.Name == "postgres-data",
                    $"{name}/{container.Name}: mount {m.Name} has no volume"));
                Assert.Contains(container.VolumeMounts ?? [], m => m.MountPath == "/tmp");
            }
        }
    }

    [Fact]
    public void Selectors_match_the_labels_they_select_and_references_resolve()
    {
        var objects = LoadAll();
        var pods = PodTemplates(objects).ToList();
        foreach (var (name, selector, pod) in objects.OfType<V1Deployment>().Select(d =>
            (d.Metadata.Name, d.Spec.Selector, d.Spec.Template))
                     .Concat(objects.OfType<V1StatefulSet>().Select(s => (s.Metadata.Name, s.Spec.Selector, s.Spec.Template))))
        {
            Assert.True(Matches(selector.MatchLabels, pod.Metadata.Labels), $"{name}: selector does not match its pod labels");
        }
        foreach (var service in objects.OfType<V1Service>())
        {
            var pod = pods.SingleOrDefault(p => Matches(service.Spec.Selector, p.Pod.Metadata.Labels));
            Assert.True(pod.Pod is not null, $"service {service.Metadata.Name} selects no pod");
            var ports = pod.Pod.Spec.Containers.SelectMany(c => c.Ports).Select(p => p.Name).ToHashSet();
            Assert.All(service.Spec.Ports, p => Assert.Contains(p.TargetPort.Value, ports));
        }
        Assert.All(objects.OfType<V1PodDisruptionBudget>(),
            pdb => Assert.Contains(pods, p => Matches(pdb.Spec.Selector.MatchLabels, p.Pod.Metadata.Labels)));
        Assert.All(objects.OfType<V1NetworkPolicy>(),
            policy => Assert.Contains(pods, p => Matches(policy.Spec.PodSelector.MatchLabels, p.Pod.Metadata.Labels)));
        var hpa = objects.OfType<V2HorizontalPodAutoscaler>().Single();
        Assert.Contains(objects.OfType<V1Deployment>(), d => d.Metadata.Name == hpa.Spec.ScaleTargetRef.Name
            && hpa.Spec.ScaleTargetRef.Kind == "Deployment");
        var services = objects.OfType<V1Service>().ToDictionary(s => s.Metadata.Name);
        foreach (var path in objects.OfType<V1Ingress>().SelectMany(i => i.Spec.Rules).SelectMany(r => r.Http.Paths))
        {
            Assert.True(services.TryGetValue(path.Backend.Service.Name, out var service), $"ingress backend {path.Backend.Service.Name}");
            Assert.Contains(service.Spec.Ports, p => p.Name == path.Backend.Service.Port.Name);
        }
        var configMaps = objects.OfType<V1ConfigMap>().Select(c => c.Metadata.Name).ToHashSet();
        var secrets = objects.OfType<V1Secret>().Select(c => c.Metadata.Name).ToHashSet();
        var claims = objects.OfType<V1PersistentVolumeClaim>().ToDictionary(c => c.Metadata.Name);
        foreach (var (name, pod) in pods)
        {
            foreach (var source in pod.Spec.Containers.SelectMany(c => c.EnvFrom ?? []))
            {
                Assert.True(source.ConfigMapRef is null || configMaps.Contains(source.ConfigMapRef.Name),
                    $"{name}: configMap {source.ConfigMapRef?.Name}");
                Assert.True(source.SecretRef is null || secrets.Contains(source.SecretRef.Name),
                    $"{name}: secret {source.SecretRef?.Name}");
            }
            foreach (var volume in pod.Spec.Volumes ?? [])
            {
                Assert.True(volume.PersistentVolumeClaim is null || claims.ContainsKey(volume.PersistentVolumeClaim.ClaimName),
                    $"{name}: claim");
                Assert.True(volume.ConfigMap is null || configMaps.Contains(volume.ConfigMap.Name), $"{name}: configMap volume");
            }
        }
        Assert.Contains("ReadWriteMany", claims["loomworks-filestore"].Spec.AccessModes);
    }

    [Fact]
    public async Task Kustomize_renders_the_same_objects_where_kubectl_exists()
    {
        var expected = LoadAll().Count;
        if (!Tool.Exists("kubectl"))
        {
            // Without kubectl the strict load above is the whole check; there is nothing more to render with.
            Assert.True(expected > 10);
            return;
        }
        var (exitCode, output) = await Tool.RunAsync("kubectl", ["kustomize", Folder]);
        Assert.True(exitCode == 0, output);
        var rendered = KubernetesYaml.LoadAllFromString(output, strict: true);
        Assert.Equal(expected, rendered.Count);
        Assert.All(rendered.Cast<IMetadata<V1ObjectMeta>>(),
            o => Assert.Equal("loomworks", o.Metadata.Labels["app.kubernetes.io/part-of"]));
    }

    private static IEnumerable<(string Name, V1PodTemplateSpec Pod)> PodTemplates(List<object> objects) =>
        objects.OfType<V1Deployment>().Select(d => (d.Metadata.Name, d.Spec.Template))
            .Concat(objects.OfType<V1StatefulSet>().Select(s => (s.Metadata.Name, s.Spec.Template)));

    private static bool Matches(IDictionary<string, string>? selector, IDictionary<string, string>? labels) =>
        selector is { Count: > 0 } && labels is not null
        && selector.All(pair => labels.TryGetValue(pair.Key, out var value) && value == pair.Value);

    [GeneratedRegex(@"^\s+-\s+(\S+\.yaml)\s*$", RegexOptions.Multiline)]
    private static partial Regex ResourceLine();
}
