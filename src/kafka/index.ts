/**
 * Kafka, behind our own names. Nothing outside this folder imports the Kafka library (a lint
 * rule enforces it), so the client can be replaced here alone. What the rest of the service uses:
 *   createKafka              a client (opaque outside this folder)
 *   ensureTopics             create/verify the events and dead-letter topics at start-up
 *   KafkaAdmin               readiness probe, topic and group offsets, deleting a group
 *   BatchingProducer         the one producer of a process: every topic, headers, acks=all;
 *                            lanes over @platformatic/kafka (default) or kafkajs (kafka.client)
 *   ConsumerRunner           the consumer group loop, commit after durable handling
 *   fetchRecords             read single records back by (partition, offset)
 */
export { createKafka, type KafkaClient, type KafkaClientOptions } from './client.js'
export { ensureTopics, readTopicSettings, checkEventsTopic, eventsTopicConfig, KafkaAdmin, type PartitionOffsets, type TopicProblem } from './admin.js'
export { BatchingProducer, producerOptions, wasNotSent, type BatchingProducerOptions, type OutboundMessage, type TopicMessage, type Ticket } from './producer.js'
export { ConsumerRunner, CONSUMER_RETRY, consumerOptions, type ConsumerRunnerOptions, type InboundRecord, type PartitionBatchHandler } from './consumer.js'
export { fetchRecords, type FetchedRecord } from './fetch-one.js'
export { tailTopics, type TailedRecord, type Tailing } from './tail.js'
export { createMemberRemover, type MemberRemover, type RemoveMember } from './members.js'
export { kafkaError } from './errors.js'
