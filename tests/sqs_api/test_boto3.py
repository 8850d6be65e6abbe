"""Conformance of Updraft's SQS entry point (SPEC §5) with the real boto3.

Configured from the environment:
  UPDRAFT_ENDPOINT                              http://127.0.0.1:PORT of a running `updraft server`
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY     the server's credentials (SPEC §1)

Run one class with `python3 tests/sqs_api/test_boto3.py ClassName -v`;
tests/sqs_api.rs starts a server per class and does exactly that.

Queues are global on a server, so every test makes its own names. botocore no
longer checks SQS's MD5 digests itself, so these tests do, with SQS's
documented algorithm written out here.
"""

import hashlib
import json
import os
import struct
import threading
import unittest
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.config
import botocore.exceptions

ENDPOINT = os.environ.get("UPDRAFT_ENDPOINT", "http://127.0.0.1:8080").rstrip("/")
REGION = "us-east-1"
ACCOUNT = "000000000000"
MIB = 1024 * 1024


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client(validate=True, secret=None):
    return boto3.client(
        "sqs",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=secret or os.environ.get("AWS_SECRET_ACCESS_KEY"),
        config=botocore.config.Config(
            retries={"max_attempts": 1, "mode": "standard"},
            read_timeout=60,
            connect_timeout=10,
            parameter_validation=validate,
        ),
    )


def md5_of_attributes(attrs):
    """SQS's MD5OfMessageAttributes: names sorted; each name, type and value
    length-prefixed (4 bytes, big-endian), a transport byte (1 string, 2 binary)
    before the value."""
    h = hashlib.md5()

    def put(b):
        h.update(struct.pack(">I", len(b)) + b)

    for name in sorted(attrs):
        a = attrs[name]
        put(name.encode())
        put(a["DataType"].encode())
        if "BinaryValue" in a:
            h.update(b"\x02")
            put(a["BinaryValue"])
        else:
            h.update(b"\x01")
            put(a["StringValue"].encode())
    return h.hexdigest()


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class Base(unittest.TestCase):
    def setUp(self):
        self.sqs = client()

    def queue(self, prefix="q", **attributes):
        name = unique(prefix)
        attrs = {k: str(v) for k, v in attributes.items()}
        url = self.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        return name, url

    def assertCode(self, ctx, code, shape=None):
        err = ctx.exception.response["Error"]
        self.assertEqual(err["Code"], code, err)
        if shape:
            self.assertEqual(err.get("QueryErrorCode"), shape, err)
        return err


class QueuesTest(Base):
    def test_create_get_list_attributes_delete(self):
        name = unique("orders")
        url = self.sqs.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": "45", "DelaySeconds": "0"}
        )["QueueUrl"]
        self.assertEqual(url, f"{ENDPOINT}/{ACCOUNT}/{name}")
        # The same name and attributes: the same queue; others: QueueNameExists.
        again = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})
        self.assertEqual(again["QueueUrl"], url)
        self.assertEqual(self.sqs.create_queue(QueueName=name)["QueueUrl"], url)
        with self.assertRaises(self.sqs.exceptions.QueueNameExists) as ctx:
            self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
        self.assertCode(ctx, "QueueAlreadyExists", "QueueNameExists")
        self.assertEqual(self.sqs.get_queue_url(QueueName=name)["QueueUrl"], url)

        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        self.assertEqual(attrs["QueueArn"], f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
        self.assertEqual(attrs["VisibilityTimeout"], "45")
        self.assertEqual(attrs["MaximumMessageSize"], str(MIB))
        self.assertEqual(attrs["ApproximateNumberOfMessages"], "0")
        self.assertEqual(attrs["ApproximateNumberOfMessagesNotVisible"], "0")
        self.assertGreater(int(attrs["CreatedTimestamp"]), 1_700_000_000)
        only = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        self.assertEqual(list(only["Attributes"]), ["QueueArn"])
        with self.assertRaises(self.sqs.exceptions.InvalidAttributeName):
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchThing"])

        self.sqs.send_message(QueueUrl=url, MessageBody="one")
        self.sqs.send_message(QueueUrl=url, MessageBody="two")
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        self.assertEqual(attrs["ApproximateNumberOfMessages"], "2")
        self.sqs.purge_queue(QueueUrl=url)
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=url))

        self.sqs.delete_queue(QueueUrl=url)
        with self.assertRaises(self.sqs.exceptions.QueueDoesNotExist) as ctx:
            self.sqs.get_queue_url(QueueName=name)
        self.assertCode(ctx, "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
        for call in (
            lambda: self.sqs.send_message(QueueUrl=url, MessageBody="x"),
            lambda: self.sqs.receive_message(QueueUrl=url),
            lambda: self.sqs.purge_queue(QueueUrl=url),
            lambda: self.sqs.delete_queue(QueueUrl=url),
            lambda: self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]),
        ):
            with self.assertRaises(self.sqs.exceptions.QueueDoesNotExist):
                call()

    def test_list_queues_by_prefix_and_page(self):
        prefix = unique("list")
        names = sorted(f"{prefix}-{i}" for i in range(5))
        for n in names:
            self.sqs.create_queue(QueueName=n)
        got = self.sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]
        self.assertEqual(got, [f"{ENDPOINT}/{ACCOUNT}/{n}" for n in names])
        pages = list(
            self.sqs.get_paginator("list_queues").paginate(
                QueueNamePrefix=prefix, PaginationConfig={"PageSize": 2}
            )
        )
        self.assertEqual([len(p["QueueUrls"]) for p in pages], [2, 2, 1])
        self.assertEqual([u for p in pages for u in p["QueueUrls"]], got)
        empty = self.sqs.list_queues(QueueNamePrefix=unique("none"))
        self.assertEqual(empty.get("QueueUrls", []), [])

    def test_bad_queue_names_and_attributes(self):
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true"})
        self.assertIn("FIFO queues are not supported", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.sqs.create_queue(QueueName="jobs.fifo")
        self.assertIn("FIFO queues are not supported", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.sqs.create_queue(QueueName="a" * 81)
        err = self.assertCode(ctx, "InvalidParameterValue")
        self.assertIn("1 to 80", err["Message"])
        with self.assertRaises(self.sqs.exceptions.InvalidAttributeName) as ctx:
            self.sqs.create_queue(QueueName=unique("p"), Attributes={"Policy": "{}"})
        self.assertIn("Policy", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.sqs.create_queue(QueueName=unique("v"), Attributes={"VisibilityTimeout": "43201"})
        self.assertIn("VisibilityTimeout", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(self.sqs.exceptions.InvalidAttributeValue):
            self.sqs.create_queue(
                QueueName=unique("r"),
                Attributes={"RedrivePolicy": json.dumps({
                    "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{unique('missing')}",
                    "maxReceiveCount": 3,
                })},
            )

    def test_unsupported_operations_answer_in_sqs_shape(self):
        _, url = self.queue()
        for call, op in (
            (lambda: self.sqs.tag_queue(QueueUrl=url, Tags={"a": "b"}), "TagQueue"),
            (lambda: self.sqs.list_queue_tags(QueueUrl=url), "ListQueueTags"),
            (lambda: self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "1"}),
             "SetQueueAttributes"),
        ):
            with self.assertRaises(self.sqs.exceptions.UnsupportedOperation) as ctx:
                call()
            err = self.assertCode(ctx, "AWS.SimpleQueueService.UnsupportedOperation", "UnsupportedOperation")
            self.assertIn(op, err["Message"])
            self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)

    def test_wrong_credentials_are_access_denied(self):
        bad = client(secret="not-the-secret")
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            bad.list_queues()
        self.assertCode(ctx, "AccessDenied")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        # Unsigned, the same shape.
        req = urllib.request.Request(
            ENDPOINT + "/", data=b"{}", method="POST",
            headers={"X-Amz-Target": "AmazonSQS.ListQueues",
                     "Content-Type": "application/x-amz-json-1.0"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            opener.open(req, timeout=30)
        body = json.loads(ctx.exception.read())
        self.assertEqual(body["__type"], "com.amazonaws.sqs#AccessDenied")
        self.assertEqual(ctx.exception.headers["x-amzn-query-error"], "AccessDenied;Sender")


class MessagesTest(Base):
    def test_send_receive_delete_with_attributes_and_digests(self):
        _, url = self.queue()
        attrs = {
            "trace.id": {"DataType": "String", "StringValue": "abc"},
            "count": {"DataType": "Number", "StringValue": "42"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        }
        body = "héllo wörld ✓"
        sent = self.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs)
        self.assertEqual(sent["MD5OfMessageBody"], md5(body))
        self.assertEqual(sent["MD5OfMessageAttributes"], md5_of_attributes(attrs))
        uuid.UUID(sent["MessageId"])

        got = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )["Messages"]
        self.assertEqual(len(got), 1)
        m = got[0]
        self.assertEqual((m["MessageId"], m["Body"], m["MD5OfBody"]), (sent["MessageId"], body, md5(body)))
        self.assertEqual(m["MessageAttributes"], attrs)
        self.assertEqual(m["MD5OfMessageAttributes"], md5_of_attributes(attrs))
        a = m["Attributes"]
        self.assertEqual(a["ApproximateReceiveCount"], "1")
        self.assertEqual(a["SenderId"], os.environ["AWS_ACCESS_KEY_ID"])
        self.assertLessEqual(int(a["SentTimestamp"]), int(a["ApproximateFirstReceiveTimestamp"]))

        # In flight: not received again; then deleted.
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=url))
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        attrs_now = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        self.assertEqual(attrs_now["ApproximateNumberOfMessagesNotVisible"], "0")
        # Deleting again (a stale handle) is accepted, as on SQS.
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def test_attribute_selection_and_system_attributes(self):
        _, url = self.queue()
        attrs = {
            "trace.id": {"DataType": "String", "StringValue": "t"},
            "trace.span": {"DataType": "String", "StringValue": "s"},
            "other": {"DataType": "String", "StringValue": "o"},
        }
        self.sqs.send_message(QueueUrl=url, MessageBody="b", MessageAttributes=attrs)
        m = self.sqs.receive_message(
            QueueUrl=url, MessageAttributeNames=["trace.*"], AttributeNames=["SentTimestamp"],
            VisibilityTimeout=0,
        )["Messages"][0]
        want = {k: v for k, v in attrs.items() if k.startswith("trace.")}
        self.assertEqual(m["MessageAttributes"], want)
        self.assertEqual(m["MD5OfMessageAttributes"], md5_of_attributes(want))
        self.assertEqual(list(m["Attributes"]), ["SentTimestamp"])
        m = self.sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
        self.assertNotIn("MessageAttributes", m)
        self.assertNotIn("Attributes", m)
        m = self.sqs.receive_message(QueueUrl=url, MessageAttributeNames=[".*"],
                                     AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
        self.assertEqual(m["MessageAttributes"], attrs)
        self.assertEqual(m["Attributes"]["ApproximateReceiveCount"], "3")

    def test_size_limit_is_one_mib_counting_attributes(self):
        _, url = self.queue()
        self.sqs.send_message(QueueUrl=url, MessageBody="x" * MIB)
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.sqs.send_message(QueueUrl=url, MessageBody="x" * (MIB + 1))
        err = self.assertCode(ctx, "InvalidParameterValue")
        self.assertIn("1048576", err["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.sqs.send_message(
                QueueUrl=url, MessageBody="x" * (MIB - 5),
                MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}},
            )
        self.assertIn("1048576", ctx.exception.response["Error"]["Message"])
        got = self.sqs.receive_message(QueueUrl=url)["Messages"]
        self.assertEqual(len(got[0]["Body"]), MIB)

    def test_bad_input_is_refused_by_name(self):
        _, url = self.queue()
        raw = client(validate=False)
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            raw.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=901)
        self.assertIn("DelaySeconds", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            raw.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
        self.assertIn("MaxNumberOfMessages", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            raw.receive_message(QueueUrl=url, WaitTimeSeconds=21)
        self.assertIn("WaitTimeSeconds", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            raw.send_message(QueueUrl=url, MessageBody="x",
                             MessageAttributes={"k": {"DataType": "Number", "StringValue": "one"}})
        self.assertIn("MessageAttributes.k", ctx.exception.response["Error"]["Message"])
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            raw.send_message(QueueUrl=url)
        self.assertCode(ctx, "MissingParameter")
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            raw.send_message(QueueUrl=url, MessageBody="bad \x01 char")
        self.assertCode(ctx, "InvalidParameterValue")

    def test_receipt_handles_and_visibility(self):
        _, url = self.queue()
        with self.assertRaises(self.sqs.exceptions.ReceiptHandleIsInvalid) as ctx:
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
        self.assertCode(ctx, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid")
        with self.assertRaises(self.sqs.exceptions.ReceiptHandleIsInvalid):
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="nope", VisibilityTimeout=0)
        self.sqs.send_message(QueueUrl=url, MessageBody="v")
        m = self.sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"][0]
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=url))
        # Visible again at once, under a new handle; the old one is void.
        self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        again = self.sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
        self.assertEqual(again["MessageId"], m["MessageId"])
        self.assertNotEqual(again["ReceiptHandle"], m["ReceiptHandle"])
        self.assertEqual(again["Attributes"]["ApproximateReceiveCount"], "2")
        with self.assertRaises(self.sqs.exceptions.ReceiptHandleIsInvalid):
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=5)

    def test_batches(self):
        _, url = self.queue()
        entries = [{"Id": f"e{i}", "MessageBody": f"body {i}"} for i in range(9)]
        entries.append({"Id": "bad", "MessageBody": "x",
                        "MessageAttributes": {"k": {"DataType": "Text", "StringValue": "v"}}})
        resp = self.sqs.send_message_batch(QueueUrl=url, Entries=entries)
        self.assertEqual(sorted(s["Id"] for s in resp["Successful"]), [f"e{i}" for i in range(9)])
        for s in resp["Successful"]:
            self.assertEqual(s["MD5OfMessageBody"], md5(f"body {s['Id'][1:]}"))
        self.assertEqual(len(resp["Failed"]), 1)
        f = resp["Failed"][0]
        self.assertEqual((f["Id"], f["SenderFault"], f["Code"]), ("bad", True, "InvalidParameterValue"))

        raw = client(validate=False)
        for entries, exc, code in (
            ([], "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest"),
            ([{"Id": f"i{i}", "MessageBody": "x"} for i in range(11)], "TooManyEntriesInBatchRequest",
             "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
            ([{"Id": "same", "MessageBody": "x"}] * 2, "BatchEntryIdsNotDistinct",
             "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
            ([{"Id": "not ok!", "MessageBody": "x"}], "InvalidBatchEntryId",
             "AWS.SimpleQueueService.InvalidBatchEntryId"),
        ):
            with self.assertRaises(getattr(raw.exceptions, exc)) as ctx:
                raw.send_message_batch(QueueUrl=url, Entries=entries)
            self.assertCode(ctx, code, exc)
        with self.assertRaises(raw.exceptions.BatchEntryIdsNotDistinct):
            raw.delete_message_batch(QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": "x"}] * 2)
        with self.assertRaises(raw.exceptions.EmptyBatchRequest):
            raw.delete_message_batch(QueueUrl=url, Entries=[])

        got = []
        while len(got) < 9:
            page = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            self.assertTrue(page, f"only {len(got)} of 9 messages came")
            got.extend(page)
        self.assertEqual(sorted(m["Body"] for m in got), sorted(f"body {i}" for i in range(9)))
        entries = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        entries.append({"Id": "junk", "ReceiptHandle": "junk"})
        resp = self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        self.assertEqual(len(resp["Successful"]), 9)
        self.assertEqual([(f["Id"], f["Code"]) for f in resp["Failed"]], [("junk", "ReceiptHandleIsInvalid")])
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        self.assertEqual((attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]),
                         ("0", "0"))

    def test_long_polling_is_woken_by_a_send(self):
        _, url = self.queue()
        # An empty poll ends empty.
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1))
        polling = threading.Event()
        result = {}

        def poll():
            polling.set()
            result["r"] = client().receive_message(QueueUrl=url, WaitTimeSeconds=20)

        t = threading.Thread(target=poll)
        t.start()
        polling.wait()
        self.sqs.send_message(QueueUrl=url, MessageBody="wake up")
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertEqual(result["r"]["Messages"][0]["Body"], "wake up")

    def test_delayed_messages(self):
        _, url = self.queue(DelaySeconds=1)
        self.sqs.send_message(QueueUrl=url, MessageBody="later")
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        self.assertEqual(attrs["ApproximateNumberOfMessagesDelayed"], "1")
        # A long poll waits for it to come due.
        got = self.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)["Messages"]
        self.assertEqual(got[0]["Body"], "later")


class RedriveTest(Base):
    def test_a_message_received_max_times_moves_to_the_dead_letter_queue(self):
        dlq_name, dlq_url = self.queue("dlq")
        policy = {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dlq_name}", "maxReceiveCount": "2"}
        _, url = self.queue("work", RedrivePolicy=json.dumps(policy))
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        self.assertEqual(json.loads(attrs["RedrivePolicy"]),
                         {"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": 2})
        sent = self.sqs.send_message(QueueUrl=url, MessageBody="poison")["MessageId"]
        for n in (1, 2):
            m = self.sqs.receive_message(QueueUrl=url, VisibilityTimeout=0,
                                         AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
            self.assertEqual((m["MessageId"], m["Attributes"]["ApproximateReceiveCount"]), (sent, str(n)))
        # The third receive finds it past its max: it is in the DLQ instead.
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=url))
        dead = self.sqs.receive_message(QueueUrl=dlq_url)["Messages"]
        self.assertEqual([(m["MessageId"], m["Body"]) for m in dead], [(sent, "poison")])


if __name__ == "__main__":
    unittest.main()
