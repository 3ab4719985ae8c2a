"""Unit tests of scripts/k8s_consistency.py on the real rendered base
(K8S_RENDERED) and the real binaries (K8S_BIN_DIR); scripts/check-k8s sets
both and runs them:

    K8S_RENDERED=.local/k8s/base.yaml K8S_BIN_DIR=target/debug \\
      python3 -m unittest discover -s scripts -p 'test_k8s_*.py'
"""
import copy
import os
import unittest

import yaml

import k8s_consistency as k8s


def rendered():
    path, bin_dir = os.environ.get("K8S_RENDERED"), os.environ.get("K8S_BIN_DIR")
    if not path or not bin_dir:
        raise RuntimeError("set K8S_RENDERED (kubectl kustomize deploy/k8s/base) and K8S_BIN_DIR (the built binaries)")
    with open(path) as f:
        return [o for o in yaml.safe_load_all(f) if o], bin_dir


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


class Check(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects, cls.bin_dir = rendered()
        cls.topology = staticmethod(k8s.topology_from(cls.bin_dir))

    def problems(self, objects, with_settings=False):
        return k8s.check(objects, self.topology, self.bin_dir if with_settings else None)

    def mutated(self):
        return copy.deepcopy(self.objects)

    def test_the_committed_manifests_are_consistent(self):
        self.assertEqual(self.problems(self.objects, with_settings=True), [])

    def test_a_scaled_object_naming_a_missing_queue_fails(self):
        objects = self.mutated()
        find(objects, "ScaledObject", "capi-sender")["spec"]["triggers"][0]["metadata"]["queueName"] = "capi.capi.event"
        problems = self.problems(objects)
        self.assertEqual(len(problems), 1, problems)
        self.assertTrue(problems[0].startswith(
            "ScaledObject capi-sender: queue 'capi.capi.event' does not exist in the bus topology (prefix 'capi': "),
            problems[0])

    def test_a_queue_under_another_prefix_fails(self):
        objects = self.mutated()
        find(objects, "ConfigMap", "capi-settings")["data"]["CAPI_AMQP__PREFIX"] = "crm"
        problems = self.problems(objects)
        self.assertEqual(len(problems), 6, problems)  # every trigger of the three ScaledObjects
        self.assertIn("ScaledObject capi-sender: queue 'capi.capi.events' does not exist in the bus topology "
                      "(prefix 'crm': crm.capi.events, ", "\n".join(problems))

    def test_a_queue_of_another_stage_fails(self):
        objects = self.mutated()
        find(objects, "ScaledObject", "capi-sender")["spec"]["triggers"][0]["metadata"]["queueName"] = "capi.chatbot.messages"
        self.assertEqual(self.problems(objects), [
            "ScaledObject capi-sender: queue capi.chatbot.messages is consumed by chatbot-service, not capi-sender"])

    def test_a_consumer_stage_without_a_scaled_object_fails(self):
        objects = [o for o in self.mutated() if not (o["kind"] == "ScaledObject" and o["metadata"]["name"] == "qualification-agent")]
        self.assertEqual(self.problems(objects), ["qualification-agent consumes queues but no ScaledObject scales it"])

    def test_a_probe_on_another_port_fails(self):
        objects = self.mutated()
        container = find(objects, "Deployment", "reports")["spec"]["template"]["spec"]["containers"][0]
        container["readinessProbe"]["httpGet"]["port"] = 8084
        self.assertEqual(self.problems(objects), ["Deployment reports: readinessProbe port 8084 is not the service's port 8080"])

    def test_a_port_setting_moves_what_probes_must_ask(self):
        objects = self.mutated()
        container = find(objects, "Deployment", "capi-sender")["spec"]["template"]["spec"]["containers"][0]
        container["env"].append({"name": "CAPI_HTTP__PORT", "value": "9000"})
        problems = self.problems(objects)
        self.assertIn("Deployment capi-sender: readinessProbe port 8080 is not the service's port 9000", problems)
        self.assertIn("Deployment capi-sender: livenessProbe port 8080 is not the service's port 9000", problems)
        self.assertIn("Service capi-sender: targetPort 8080 is not capi-sender's port 9000", problems)

    def test_a_setting_the_service_does_not_have_fails(self):
        objects = self.mutated()
        container = find(objects, "Deployment", "capi-sender")["spec"]["template"]["spec"]["containers"][0]
        container["env"].append({"name": "CAPI_META__BATCH_SIZ", "value": "100"})
        problems = self.problems(objects, with_settings=True)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("Deployment capi-sender: capi-sender: invalid configuration: key `meta.batch_siz`: unknown field", problems[0])

    def test_a_setting_of_another_service_fails(self):
        objects = self.mutated()
        container = find(objects, "Deployment", "webhook-gateway")["spec"]["template"]["spec"]["containers"][0]
        container["env"].append({"name": "CAPI_LLM__BASE_URL", "value": "http://model"})
        self.assertEqual(self.problems(objects, with_settings=True), [
            "Deployment webhook-gateway: webhook-gateway: invalid configuration: CAPI_LLM__BASE_URL set but not read "
            "by webhook-gateway (a section it has no use for)"])

    def test_a_missing_secret_key_fails(self):
        objects = self.mutated()
        del find(objects, "Secret", "capi-model")["stringData"]["api-key"]
        problems = self.problems(objects)
        self.assertIn("Deployment chatbot-service: CAPI_LLM__API_KEY refers to Secret capi-model key api-key, which does not exist", problems)


if __name__ == "__main__":
    unittest.main()
