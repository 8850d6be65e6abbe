"""Lambda's event source mappings on Updraft's queues, with the real boto3.

Configured from the environment (tests/queue_trigger.rs runs it):
  UPDRAFT_ENDPOINT                              a running `updraft server`
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY     its credentials
The app deployed beforehand has `esm-worker` (no trigger; reports each batch
to the test's sink) and `manifest-worker` (a manifest queue trigger on
`manifest-q`).
"""

import os
import time
import unittest

import boto3
import botocore.exceptions

ENDPOINT = os.environ["UPDRAFT_ENDPOINT"].rstrip("/")
REGION = "us-east-1"


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION)


def wait_for(what, pred, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class MappingsTest(unittest.TestCase):
    def setUp(self):
        self.sqs = client("sqs")
        self.lam = client("lambda")

    def depth(self, url):
        a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])

    def test_a_mapping_made_through_the_api_consumes_its_queue(self):
        url = self.sqs.create_queue(QueueName="esm-q")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.assertEqual(arn, "arn:aws:sqs:us-east-1:000000000000:esm-q")
        m = self.lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName="esm-worker", BatchSize=5,
            MaximumBatchingWindowInSeconds=1, FunctionResponseTypes=["ReportBatchItemFailures"])
        self.assertEqual(m["ResponseMetadata"]["HTTPStatusCode"], 202)
        self.assertEqual(m["State"], "Creating")
        self.assertEqual(m["BatchSize"], 5)
        self.assertEqual(m["MaximumBatchingWindowInSeconds"], 1)
        self.assertEqual(m["EventSourceArn"], arn)
        self.assertEqual(m["FunctionArn"], "arn:aws:lambda:us-east-1:000000000000:function:esm-worker")
        self.assertEqual(m["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        uuid = m["UUID"]
        got = self.lam.get_event_source_mapping(UUID=uuid)
        self.assertEqual(got["State"], "Enabled")
        listed = self.lam.list_event_source_mappings(FunctionName="esm-worker")["EventSourceMappings"]
        self.assertEqual([x["UUID"] for x in listed], [uuid])
        by_queue = self.lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]
        self.assertEqual([x["UUID"] for x in by_queue], [uuid])

        for i in range(3):
            self.sqs.send_message(QueueUrl=url, MessageBody=f'{{"esm": {i}}}')
        wait_for("the mapping to consume the queue", lambda: self.depth(url) == 0)

        # Disabled: messages stay on the queue.
        u = self.lam.update_event_source_mapping(UUID=uuid, Enabled=False, BatchSize=7)
        self.assertEqual(u["State"], "Updating")
        got = self.lam.get_event_source_mapping(UUID=uuid)
        self.assertEqual((got["State"], got["BatchSize"]), ("Disabled", 7))

        d = self.lam.delete_event_source_mapping(UUID=uuid)
        self.assertEqual(d["State"], "Deleting")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.lam.get_event_source_mapping(UUID=uuid)
        self.assertEqual(e.exception.response["Error"]["Code"], "ResourceNotFoundException")

    def test_refusals_name_the_field(self):
        url = self.sqs.create_queue(QueueName="esm-refusals")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        cases = [
            (dict(EventSourceArn="arn:aws:sqs:us-east-1:000000000000:no-such-queue", FunctionName="esm-worker"),
             "InvalidParameterValueException", "no-such-queue"),
            (dict(EventSourceArn=arn, FunctionName="no-such-function"),
             "ResourceNotFoundException", "no-such-function"),
            (dict(EventSourceArn=arn, FunctionName="esm-worker", FunctionResponseTypes=["Bogus"]),
             "InvalidParameterValueException", "FunctionResponseTypes"),
            (dict(EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/s", FunctionName="esm-worker"),
             "InvalidParameterValueException", "EventSourceArn"),
        ]
        for kwargs, code, text in cases:
            with self.subTest(code=code, text=text):
                with self.assertRaises(botocore.exceptions.ClientError) as e:
                    self.lam.create_event_source_mapping(**kwargs)
                self.assertEqual(e.exception.response["Error"]["Code"], code)
                self.assertIn(text, e.exception.response["Error"]["Message"])
        self.lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="esm-worker")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="esm-worker")
        self.assertEqual(e.exception.response["Error"]["Code"], "ResourceConflictException")

    def test_a_manifest_trigger_is_the_same_mapping_and_queue(self):
        urls = self.sqs.list_queues(QueueNamePrefix="manifest-q").get("QueueUrls", [])
        self.assertTrue(any(u.endswith("/manifest-q") for u in urls), urls)
        listed = self.lam.list_event_source_mappings(FunctionName="manifest-worker")["EventSourceMappings"]
        self.assertEqual(len(listed), 1, listed)
        self.assertEqual(listed[0]["EventSourceArn"], "arn:aws:sqs:us-east-1:000000000000:manifest-q")
        self.assertEqual(listed[0]["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertEqual(listed[0]["StateTransitionReason"], "updraft.toml")


if __name__ == "__main__":
    unittest.main()
