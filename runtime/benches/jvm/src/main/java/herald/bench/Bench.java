package herald.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.listener.ContainerProperties;
import org.springframework.kafka.listener.KafkaMessageListenerContainer;
import org.springframework.kafka.listener.MessageListener;

/**
 * The JVM peers of runtime/benches/compare.rs, doing the same work against the same broker: N events of
 * the same JSON with the same eight CloudEvents headers, 4 partitions, acks=all and idempotence, every
 * publish in flight; then the backlog consumed in a new group, the JSON parsed, offsets committed after
 * the records were processed; then end-to-end latency at 10,000 events/s for 3 s.
 *
 * <pre>java -cp target/classes:target/libs/* herald.bench.Bench CLIENT BOOTSTRAP EVENTS PREFIX [mock]</pre>
 *
 * CLIENT is {@code kafka-clients} (KafkaProducer, KafkaConsumer with commitAsync after each poll) or
 * {@code spring-kafka} (KafkaTemplate, a KafkaMessageListenerContainer with a record MessageListener and
 * AckMode.BATCH, built without an application context). One untimed round first warms the JIT. CPU is the
 * whole process's (OperatingSystemMXBean: JIT and GC threads included), RSS the whole process's peak
 * (VmHWM, reset per phase). Prints tab-separated ROW and LAT lines, as the Rust bench does with
 * BENCH_ROWS=1.
 */
public final class Bench {
    record Reading(long sensor, long seq, double celsius, String site) {}

    record Ping(long sensor, long sent_us) {}

    static final ObjectMapper JSON = new ObjectMapper();
    static final long EPOCH = System.nanoTime();
    static final int PARTITIONS = 4;

    static long nowUs() {
        return (System.nanoTime() - EPOCH) / 1_000;
    }

    static Reading reading(long seq) {
        return new Reading(seq % 64, seq, 20.0 + (seq % 100) / 10.0, "plant-north");
    }

    final String client;
    final String bootstrap;
    final int events;
    final String prefix;
    final boolean mock;

    Bench(String client, String bootstrap, int events, String prefix, boolean mock) {
        this.client = client;
        this.bootstrap = bootstrap;
        this.events = events;
        this.prefix = prefix;
        this.mock = mock;
    }

    String topic(String name) {
        return prefix.isEmpty() ? name : prefix + "." + name;
    }

    // ---- settings: the same as herald's and the raw rdkafka client's ----

    Map<String, Object> producerProps() {
        Map<String, Object> p = new HashMap<>();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.LINGER_MS_CONFIG, mock ? 1 : 5);
        if (mock) {
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        }
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        return p;
    }

    Map<String, Object> consumerProps(String group) {
        Map<String, Object> p = new HashMap<>();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        if (mock) {
            p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 4);
        }
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        return p;
    }

    /** The bytes and headers herald sends for an event, as compare.rs's raw client writes them. */
    static ProducerRecord<String, byte[]> record(String topic, long sensor, Object event, String type) {
        String id = UUID.randomUUID().toString();
        String time = Instant.now().truncatedTo(ChronoUnit.MILLIS).toString();
        RecordHeaders h = new RecordHeaders();
        h.add("ce_specversion", "1.0".getBytes(StandardCharsets.UTF_8));
        h.add("ce_id", id.getBytes(StandardCharsets.UTF_8));
        h.add("ce_type", type.getBytes(StandardCharsets.UTF_8));
        h.add("ce_source", "bench".getBytes(StandardCharsets.UTF_8));
        h.add("ce_time", time.getBytes(StandardCharsets.UTF_8));
        h.add("content-type", "application/json".getBytes(StandardCharsets.UTF_8));
        h.add("ce_schemaversion", "1".getBytes(StandardCharsets.UTF_8));
        h.add("ce_correlationid", id.getBytes(StandardCharsets.UTF_8));
        byte[] value;
        try {
            value = JSON.writeValueAsBytes(event);
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
        return new ProducerRecord<>(topic, null, Long.toString(sensor), value, h);
    }

    // ---- the two clients behind one interface ----

    interface Client extends AutoCloseable {
        /** Sends every record without waiting, then waits for every acknowledgement. */
        void publishAll(List<ProducerRecord<String, byte[]>> records) throws Exception;

        /** Sends one record without waiting for it. */
        void send(ProducerRecord<String, byte[]> record);

        /** Consumes {@code topic} in {@code group}, calling {@code handle} per record, until the returned handle is closed. */
        AutoCloseable consume(String topic, String group, Consumer<byte[]> handle);
    }

    final class KafkaClients implements Client {
        final KafkaProducer<String, byte[]> producer = new KafkaProducer<>(producerProps());

        public void publishAll(List<ProducerRecord<String, byte[]>> records) throws Exception {
            CountDownLatch acked = new CountDownLatch(records.size());
            AtomicReference<Exception> failed = new AtomicReference<>();
            for (ProducerRecord<String, byte[]> r : records) {
                producer.send(r, (m, e) -> {
                    if (e != null) {
                        failed.set(e);
                    }
                    acked.countDown();
                });
            }
            acked.await();
            if (failed.get() != null) {
                throw failed.get();
            }
        }

        public void send(ProducerRecord<String, byte[]> record) {
            producer.send(record);
        }

        public AutoCloseable consume(String topic, String group, Consumer<byte[]> handle) {
            Thread thread = new Thread(() -> {
                try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(consumerProps(group))) {
                    consumer.subscribe(List.of(topic));
                    while (!Thread.currentThread().isInterrupted()) {
                        ConsumerRecords<String, byte[]> records = consumer.poll(Duration.ofMillis(100));
                        for (ConsumerRecord<String, byte[]> r : records) {
                            handle.accept(r.value());
                        }
                        if (!records.isEmpty()) {
                            consumer.commitAsync();
                        }
                    }
                    consumer.commitSync();
                } catch (org.apache.kafka.common.errors.InterruptException e) {
                    // stopped
                }
            }, "consumer-" + topic);
            thread.start();
            return () -> {
                thread.interrupt();
                thread.join(30_000);
            };
        }

        public void close() {
            producer.close();
        }
    }

    final class SpringKafka implements Client {
        final DefaultKafkaProducerFactory<String, byte[]> factory = new DefaultKafkaProducerFactory<>(producerProps());
        final KafkaTemplate<String, byte[]> template = new KafkaTemplate<>(factory);

        public void publishAll(List<ProducerRecord<String, byte[]>> records) throws Exception {
            CountDownLatch acked = new CountDownLatch(records.size());
            AtomicReference<Throwable> failed = new AtomicReference<>();
            for (ProducerRecord<String, byte[]> r : records) {
                template.send(r).whenComplete((m, e) -> {
                    if (e != null) {
                        failed.set(e);
                    }
                    acked.countDown();
                });
            }
            acked.await();
            if (failed.get() != null) {
                throw new RuntimeException(failed.get());
            }
        }

        public void send(ProducerRecord<String, byte[]> record) {
            template.send(record);
        }

        public AutoCloseable consume(String topic, String group, Consumer<byte[]> handle) {
            ContainerProperties props = new ContainerProperties(topic);
            props.setGroupId(group);
            props.setAckMode(ContainerProperties.AckMode.BATCH); // the default: commit after each poll's records
            props.setMessageListener((MessageListener<String, byte[]>) r -> handle.accept(r.value()));
            KafkaMessageListenerContainer<String, byte[]> container =
                    new KafkaMessageListenerContainer<>(new DefaultKafkaConsumerFactory<>(consumerProps(group)), props);
            container.start();
            return container::stop;
        }

        public void close() {
            factory.destroy();
        }
    }

    Client newClient() {
        return switch (client) {
            case "kafka-clients" -> new KafkaClients();
            case "spring-kafka" -> new SpringKafka();
            default -> throw new IllegalArgumentException("CLIENT is kafka-clients or spring-kafka, not " + client);
        };
    }

    // ---- measuring ----

    static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    static void resetPeakRss() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (Exception e) {
            // not on Linux, or not allowed: the peak is then the process's
        }
    }

    static double statusMb(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field)) {
                    return Long.parseLong(line.split("\\s+")[1]) / 1024.0;
                }
            }
        } catch (Exception e) {
            // fall through
        }
        return Double.NaN;
    }

    interface Work {
        /** Runs the phase; returns seconds. */
        double run() throws Exception;
    }

    void measure(String phase, long count, Work work) throws Exception {
        resetPeakRss();
        double startRss = statusMb("VmRSS:");
        long cpuBefore = cpuNanos();
        double secs = work.run();
        double cpuUs = (cpuNanos() - cpuBefore) / 1e3 / count;
        double peak = statusMb("VmHWM:");
        System.out.printf("ROW\t%s\t%s\t%d\t%.3f\t%.3f\t%.1f\t%.1f%n", phase, client, count, secs, cpuUs, peak, peak - startRss);
        System.out.flush();
    }

    /** Publishes `events` readings to `topic`, all in flight; seconds until the last acknowledgement. */
    double publish(Client c, String topic) throws Exception {
        long started = System.nanoTime();
        List<ProducerRecord<String, byte[]>> records = new ArrayList<>(events);
        // Encoding is part of the publish's cost, as in the Rust clients (which encode while sending).
        for (long seq = 0; seq < events; seq++) {
            Reading r = reading(seq);
            records.add(record(topic, r.sensor(), r, "reading"));
        }
        c.publishAll(records);
        return (System.nanoTime() - started) / 1e9;
    }

    /** Consumes `events` readings of `topic` in a new group; seconds from the first record to the last. */
    double consume(Client c, String topic, String group) throws Exception {
        AtomicLong seen = new AtomicLong();
        AtomicLong first = new AtomicLong(-1);
        AtomicLong last = new AtomicLong();
        CountDownLatch all = new CountDownLatch(1);
        AutoCloseable consumer = c.consume(topic, group, value -> {
            long now = System.nanoTime();
            first.compareAndSet(-1, now);
            try {
                Reading r = JSON.readValue(value, Reading.class);
                if (r.seq() < 0) {
                    throw new IllegalStateException();
                }
            } catch (java.io.IOException e) {
                throw new RuntimeException(e);
            }
            last.set(now);
            if (seen.incrementAndGet() == events) {
                all.countDown();
            }
        });
        if (!all.await(180, TimeUnit.SECONDS)) {
            throw new IllegalStateException("consumed " + seen.get() + " of " + events);
        }
        consumer.close();
        return (last.get() - first.get()) / 1e9;
    }

    List<Long> latency(Client c, String topic, String group) throws Exception {
        List<Long> latencies = Collections.synchronizedList(new ArrayList<>());
        AutoCloseable consumer = c.consume(topic, group, value -> {
            try {
                Ping p = JSON.readValue(value, Ping.class);
                latencies.add(nowUs() - p.sent_us());
            } catch (java.io.IOException e) {
                throw new RuntimeException(e);
            }
        });
        // As for the Rust clients: the group joined, a warm producer, fetches started.
        Thread.sleep(5_000);
        c.send(record(topic, 0, new Ping(0, nowUs()), "ping"));
        Thread.sleep(2_000);
        latencies.clear();
        int rate = 10_000, secs = 3, perTick = rate / 100;
        long start = System.nanoTime();
        for (int batch = 0; batch < rate * secs / perTick; batch++) {
            long due = start + batch * 10_000_000L;
            long wait = due - System.nanoTime();
            if (wait > 0) {
                Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
            }
            for (int i = 0; i < perTick; i++) {
                long sensor = (batch * perTick + i) % 64;
                c.send(record(topic, sensor, new Ping(sensor, nowUs()), "ping"));
            }
        }
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (latencies.size() < rate * secs && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        consumer.close();
        List<Long> sorted = new ArrayList<>(latencies);
        Collections.sort(sorted);
        return sorted;
    }

    static double percentile(List<Long> sorted, double p) {
        if (sorted.isEmpty()) {
            return Double.NaN;
        }
        return sorted.get((int) Math.round((sorted.size() - 1) * p)) / 1000.0;
    }

    void createTopics(List<String> topics) throws Exception {
        if (mock) {
            return; // the mock cluster has no CreateTopics: run-compare.sh created them with `herald broker --topic`
        }
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(p)) {
            List<NewTopic> newTopics = new ArrayList<>();
            for (String t : topics) {
                newTopics.add(new NewTopic(t, PARTITIONS, (short) 1));
            }
            admin.createTopics(newTopics).all().get(60, TimeUnit.SECONDS);
        }
    }

    void run() throws Exception {
        String base = "bench.jvm-" + client;
        String warm = topic(base + ".warm"), timed = topic(base), lat = topic(base + ".latency");
        createTopics(List.of(warm, timed, lat));
        try (Client c = newClient()) {
            // One untimed round: the JIT compiles the hot paths, the producer has its id and metadata.
            publish(c, warm);
            consume(c, warm, topic("jvm-warm-" + client));
            measure("publish, all concurrent", events, () -> publish(c, timed));
            measure("consume backlog", events, () -> consume(c, timed, topic("jvm-" + client)));
            List<Long> l = latency(c, lat, topic("jvm-latency-" + client));
            System.out.printf("LAT\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f%n", client, l.size(), percentile(l, 0.5),
                    percentile(l, 0.99), percentile(l, 0.999), l.isEmpty() ? Double.NaN : l.get(l.size() - 1) / 1000.0);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: Bench kafka-clients|spring-kafka BOOTSTRAP EVENTS PREFIX [mock]");
            System.exit(2);
        }
        new Bench(args[0], args[1], Integer.parseInt(args[2]), args[3], args.length > 4 && args[4].equals("mock")).run();
        System.exit(0);
    }
}
